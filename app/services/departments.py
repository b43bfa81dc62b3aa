"""Department tree rules: no cycles, same operator as the parent, materialised paths."""
from sqlalchemy import select

from app.security.models import Department


class DepartmentError(ValueError):
    pass


def validate_parent(dept):
    parent = dept.parent
    seen = set()
    while parent is not None:
        if parent is dept or (dept.id is not None and parent.id == dept.id) or parent.id in seen:
            raise DepartmentError("A department cannot be its own parent or descendant.")
        seen.add(parent.id)
        parent = parent.parent
    if dept.parent is not None and dept.parent.operator_id is not None:
        if dept.operator_id is None and dept.operator is None:
            dept.operator_id = dept.parent.operator_id
        elif (dept.operator.id if dept.operator else dept.operator_id) != dept.parent.operator_id:
            raise DepartmentError("A department must belong to the same operator as its parent.")


def refresh_paths(session, dept):
    """Recompute ``path`` for ``dept`` and its whole subtree, then commit."""
    def _path(d):
        return (d.parent.path if d.parent else "/") + f"{d.id}/"

    stack = [dept]
    while stack:
        d = stack.pop()
        d.path = _path(d)
        stack.extend(session.scalars(select(Department).where(Department.parent_id == d.id)).all())
    session.commit()

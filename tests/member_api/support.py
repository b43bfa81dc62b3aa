"""Helpers of the member API tests (not fixtures: fixtures live in conftest.py)."""
from app.extensions import db


def headers_for(app, member_id, lang=None):
    """Authorization headers of a fresh access token of ``member_id`` (issued by the real code)."""
    from app.member_api.auth import issue_tokens
    from app.models import Member

    with app.app_context():
        tokens = issue_tokens(db.session.get(Member, member_id))
    out = {"Authorization": f"Bearer {tokens['access_token']}"}
    if lang:
        out["Accept-Language"] = lang
    return out


def demo_member_ids(app):
    """(member of operator A, member of operator B): demo members of two different operators."""
    from sqlalchemy import select

    from app.models import Member

    with app.app_context():
        rows = db.session.execute(
            select(Member.id, Member.operator_id).where(Member.status == "active").order_by(Member.id)).all()
    first = rows[0]
    other = next(r for r in rows if r.operator_id != first.operator_id)
    return first.id, other.id

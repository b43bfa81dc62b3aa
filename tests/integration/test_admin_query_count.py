"""Admin pages do not pay FAB's permission checks query by query (issue 9 §5).

FAB checks ``has_access`` for every menu entry, link and button of a page with one SQL query each
(``exist_permission_on_roles``; ~100 per page). ``CpmsSecurityManager`` loads the permissions of the
user's roles once per request and answers every check from them. Counted here with an SQLAlchemy
``before_cursor_execute`` listener on the real database: the number of statements of a list page,
and how many of them touch FAB's permission tables.
"""
import re

import pytest
from sqlalchemy import event

from tests.conftest import ADMIN_PASSWORD

# permission checks: FAB's per-check EXISTS / menu queries and our per-request load filter roles by
# "role id IN (...)"; a page listing roles with their permissions (lazy loads "? = role_id") is content
PERMISSION_CHECK = re.compile(r"ab_role\.id IN|ab_permission_view_role\.role_id IN")
LIST_PAGES = ["/stationview/list/", "/pileview/list/", "/historyorderview/list/", "/users/list/",
              "/roles/list/"]
# A list page's own statements (session, user, rows, counts, relations of the page's rows) depend on
# the rows shown: 14-27 on demo data, up to ~55 for the order lists once earlier tests added orders.
# FAB's per-check queries would add 50-100 on top; this bound catches that, not a row more or less.
MAX_QUERIES = 70
MAX_PERMISSION_QUERIES = 2    # permissions of the roles, once per request (+ the public role's)


class Statements:
    def __init__(self, engine):
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(statement)

    @property
    def permission_queries(self) -> list[str]:
        return [s for s in self.seen if PERMISSION_CHECK.search(s)]


def count_get(app, client, url):
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    client.get(url)                                  # warm: first-use caches (templates, metadata)
    with Statements(engine) as stmts:
        rv = client.get(url)
    assert rv.status_code == 200, (url, rv.status_code)
    return stmts


@pytest.mark.parametrize("url", LIST_PAGES)
def test_list_page_queries_are_bounded_for_the_platform_admin(app, client, login, url):
    login("admin", ADMIN_PASSWORD)
    stmts = count_get(app, client, url)
    assert len(stmts.permission_queries) <= MAX_PERMISSION_QUERIES, stmts.permission_queries
    assert len(stmts.seen) <= MAX_QUERIES, (len(stmts.seen), stmts.seen)


@pytest.mark.parametrize("url", ["/stationview/list/", "/historyorderview/list/"])
def test_list_page_queries_are_bounded_for_operator_staff(app, client, login, url):
    login("staff_a", "staff-pass-1")
    stmts = count_get(app, client, url)
    assert len(stmts.permission_queries) <= MAX_PERMISSION_QUERIES, stmts.permission_queries
    assert len(stmts.seen) <= MAX_QUERIES, (len(stmts.seen), stmts.seen)


def test_permission_checks_still_deny_and_see_changes_at_once(app, client, login):
    """The cache answers as FAB would: a view the role lacks is refused, and a permission taken away
    from a role is refused on the very next request (the cache lives for one request)."""
    from app.extensions import db

    login("viewer_a", "staff-pass-1")
    assert client.get("/stationview/list/").status_code == 200
    rv = client.get("/roles/list/")
    assert rv.status_code in (302, 403), rv.status_code            # no access to the roles screen
    sm = app.appbuilder.sm
    with app.app_context():
        user = sm.find_user(username="viewer_a")
        role = user.roles[0]
        pv = sm.find_permission_view_menu("can_list", "StationView")
        assert pv in role.permissions
        sm.del_permission_role(role, pv)
    try:
        rv = client.get("/stationview/list/")
        assert rv.status_code in (302, 403), rv.status_code
    finally:
        with app.app_context():
            role = db.session.merge(role)
            sm.add_permission_role(role, sm.find_permission_view_menu("can_list", "StationView"))
    assert client.get("/stationview/list/").status_code == 200

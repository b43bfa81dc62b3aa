"""The permission matrix, generated from the running app (not from a hand list).

Every Flask url rule (and every HTTP method of it) is mapped to its FAB view-menu and permission
(or, for endpoints without a FAB permission, to its endpoint entry); every action of a view is a
row of its own. Each row is requested as each demo role (platform admin ``admin``, operator admins
``staff_a`` and ``staff_b``, read-only staff ``viewer_a``) and anonymously, and the outcome must be
the one declared in the ONE policy table, ``app/security/policy.py``. A rule, action or FAB
permission-view pair missing from the policy fails with a message naming it.

Outcomes: *denied* is FAB's permission refusal (403, a redirect to the login page, 401 for the
REST API, or "Access is Denied" flashed by an action); *allowed* is anything else below 500. Ids
in urls are rows the caller can see (picked through the view's own datamodel and base filters, so
the request really exercises the view). Mutations are exercised without effect when allowed: a
nonexistent id for delete, stop, command, PUT and DELETE; an empty selection for bulk actions; an
unknown field for POST; forms are checked with GET (the same permission as their POST), and POSTed
only where the caller is denied.
"""
import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from flask import g
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED, PERMISSION_PREFIX
from flask_babel import force_locale

from app.security import policy
from tests.conftest import ADMIN_PASSWORD, api_token

STAFF_PASSWORD = "staff-pass-1"
USERS = {"admin": ADMIN_PASSWORD, "staff_a": STAFF_PASSWORD, "staff_b": STAFF_PASSWORD,
         "viewer_a": STAFF_PASSWORD, "anonymous": None}
MISSING_PK = "987654321"
PROBE_FILE = "matrixprobe_sep_probe.txt"  # FAB's upload naming: <uuid>_sep_<name>
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# FAB endpoints that write whatever the method (FAB refuses them by GET once CSRF is installed)
MUTATING = {"delete"}
# single-row actions that only redirect (the user screen's password / profile links)
HARMLESS_ACTIONS = {"resetmypassword", "resetpasswords", "userinfoedit"}
# BaseViews with an id in the url but no datamodel: which view's rows the id names
PK_FROM_VIEW = {"PileCommandView": "PileView"}
CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
PK_ARG = re.compile(r"<(?:[^:<>]+:)?pk>")


@dataclass
class Row:
    rule: str
    endpoint: str
    http: str
    view_menu: str | None      # None: an endpoint entry (no FAB permission)
    permission: str | None
    exists: bool               # the permission exists on the view (FAB refuses it to everyone if not)
    action: str | None = None
    single_action: bool = False
    multi_action: bool = False

    def label(self):
        what = f"{self.view_menu}.{self.permission}" if self.view_menu else f"endpoint {self.endpoint}"
        act = f" action={self.action}" if self.action else ""
        return f"{self.http} {self.rule}{act} ({what})"


def _views_by_blueprint(app):
    return {v.blueprint.name: v for v in app.appbuilder.baseviews if getattr(v, "blueprint", None) is not None}


def build_rows(app):
    """(rows, missing): one row per rule x method x action; missing lists what the policy lacks."""
    views = _views_by_blueprint(app)
    rows, missing = [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        methods = sorted(rule.methods - IGNORED_METHODS)
        if rule.endpoint in policy.ENDPOINTS:
            rows += [Row(rule.rule, rule.endpoint, m, None, None, True) for m in methods]
            continue
        bp, _, meth = rule.endpoint.partition(".")
        view = views.get(bp)
        if view is None:
            missing.append(f"endpoint {rule.endpoint} ({rule.rule}) belongs to no FAB view and has no "
                           "ENDPOINTS entry")
            continue
        vm = view.class_permission_name
        if meth in ("action", "action_post"):
            for name, act in sorted(view.actions.items()):
                perm = view.get_action_permission_name(name)
                for m in methods:
                    rows.append(Row(rule.rule, rule.endpoint, m, vm, perm, True, action=name,
                                    single_action=act.single, multi_action=act.multiple))
            continue
        fn = getattr(view, meth, None)
        base = getattr(fn, "_permission_name", None)
        if base is None:
            missing.append(f"endpoint {rule.endpoint} ({rule.rule}) has no FAB permission and no "
                           "ENDPOINTS entry")
            continue
        perm = PERMISSION_PREFIX + ((view.method_permission_name or {}).get(meth) or base)
        exists = perm in (view.base_permissions or [])
        rows += [Row(rule.rule, rule.endpoint, m, vm, perm, exists) for m in methods]
    for row in rows:
        if row.view_menu and row.exists:
            try:
                policy.audience(row.view_menu, row.permission)
            except policy.PolicyMissing as exc:
                missing.append(str(exc))
        elif row.view_menu and row.view_menu not in policy.VIEWS:
            missing.append(f"no policy entry for view-menu {row.view_menu!r} ({row.rule})")
    return rows, sorted(set(missing))


def expected_allowed(row, role_names):
    if row.view_menu is None:
        return True  # endpoint entries are PUBLIC (checked anonymously)
    if not row.exists:
        return False
    return bool(set(role_names) & policy.roles_allowed(row.view_menu, row.permission))


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rows(app):
    built, missing = build_rows(app)
    assert not missing, "the permission policy lacks:\n  " + "\n  ".join(missing)
    return built


@pytest.fixture(scope="module")
def probe_file(app):
    folder = app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, PROBE_FILE)
    with open(path, "w") as fh:
        fh.write("permission matrix probe\n")
    yield PROBE_FILE
    os.remove(path)


def _pick_pk(app, view, user):
    """Smallest id of a row ``view`` itself shows to ``user`` (its datamodel and base filters), or None."""
    datamodel = getattr(view, "datamodel", None)
    if datamodel is None:
        return None
    with app.test_request_context("/"):
        g.user = user
        _, items = datamodel.query(view._base_filters, order_column=datamodel.get_pk_name(),
                                   order_direction="asc", page=0, page_size=1)
        return str(datamodel.get_pk_value(items[0])) if items else None


def _reset_target(app, user):
    """Someone whose password ``user`` may reset: another user of its operator (any for admin)."""
    sm = app.appbuilder.sm
    others = [u for u in sm.get_all_users() if u.id != user.id and u.username in ("viewer_a", "staff_a")]
    for u in others:
        u = sm.get_user_by_id(u.id)
        if user.operator_id is None or u.operator_id == user.operator_id:
            return str(u.id)
    return MISSING_PK


def _first_file(folder):
    """A file the static route can send (the vendor folder is not in git: a 404 is fine then)."""
    for root, _dirs, files in sorted(os.walk(folder or "")):
        for name in sorted(files):
            return os.path.relpath(os.path.join(root, name), folder)
    return "no-such-file.txt"


class Caller:
    def __init__(self, app, username, probe_file):
        self.app, self.username, self.probe = app, username, probe_file
        self.web = app.test_client()
        self.api = app.test_client()
        self.headers = {}
        self.role_names = set()
        self.pks = {}
        views = {type(v).__name__: v for v in app.appbuilder.baseviews}
        with app.app_context():
            sm = app.appbuilder.sm
            with force_locale("en"):
                self.denied_flash = str(FLAMSG_ERR_SEC_ACCESS_DENIED)
            user = None
            if username != "anonymous":
                user = sm.get_user_by_id(sm.find_user(username=username).id)
                self.role_names = {r.name for r in sm.get_user_roles(user)}
                self.reset_target = _reset_target(app, user)
                for name, view in views.items():
                    self.pks[name] = _pick_pk(app, view, user)
                for name, other in PK_FROM_VIEW.items():
                    self.pks[name] = self.pks.get(other)
            else:
                self.reset_target = MISSING_PK
        if user is not None:
            rv = self.web.post("/login/", data={"username": username, "password": USERS[username]})
            assert rv.status_code == 302 and "/login" not in rv.headers["Location"], username
            self.headers = api_token(app, username, USERS[username])
        self.web.get("/lang/en")
        self.static_file = _first_file(app.static_folder)
        self.fab_static_file = _first_file(app.blueprints["appbuilder"].static_folder)

    # -- building the request ------------------------------------------------------------------
    def url(self, row, pk):
        def value(m):
            name = m.group(1)
            if name == "pk":
                return pk
            if name == "name":
                return row.action
            if name == "version":
                return "v1"
            if name == "locale":
                return "en"
            if name == "filename":
                if row.endpoint == "static":
                    return self.static_file
                if row.endpoint == "appbuilder.static":
                    return self.fab_static_file
                return self.probe
            if row.endpoint.startswith("member_api."):      # member API path values (invoice_id, payment_no, ...)
                return str(pk)
            if name == "gateway_code":                     # WeChat Pay callbacks (app/payments_notify.py)
                return "matrixprobe"
            raise AssertionError(f"no value for <{name}> in {row.rule}")

        url = CONVERTER.sub(value, row.rule)
        if row.endpoint.startswith("ResetPasswordView."):
            url += f"?pk={self.reset_target}"
        return url

    def request(self, row, allowed):
        """Returns (response, real_row) or None when the row is not exercised for this caller."""
        view_name = row.endpoint.partition(".")[0]
        pk = self.pks.get(view_name) or MISSING_PK
        real = pk != MISSING_PK
        meth = row.endpoint.partition(".")[2]
        is_api = row.rule.startswith("/api/")
        if row.view_menu is None:  # endpoint entries: anonymous only, see test_public_endpoints
            return None
        mutating = meth in MUTATING or bool(row.action)
        if allowed:
            if mutating and row.http == "GET":
                return None  # FAB refuses every mutation by GET (CSRF): exercised by POST below
            if row.action:
                if row.rule.endswith("/action_post"):
                    if not row.multi_action:
                        return None  # single-row actions run via action/<name>/<pk>
                    return self.web.post(self.url(row, pk), data={"action": row.action}), False
                if not row.single_action:
                    return None  # multi-row actions are exercised via action_post (same check)
                if row.action not in HARMLESS_ACTIONS:
                    pk, real = MISSING_PK, False
                return self.web.post(self.url(row, pk)), real
            if row.http == "POST" and not is_api and "GET" in self._methods(row) and not mutating:
                return None  # a form: GET proves the same permission; no write as a side effect
            if row.http in ("POST", "PUT", "DELETE") and (is_api or mutating or "GET" not in self._methods(row)):
                pk, real = MISSING_PK, False
        else:  # denied: never a real row where a mistake in the policy would write
            pk = pk if row.http == "GET" and not mutating else MISSING_PK
        url = self.url(row, pk)
        if row.action and row.rule.endswith("/action_post"):
            return self.web.post(url, data={"action": row.action}), False
        if is_api:
            client, kw = self.api, {"headers": self.headers}
            if row.http in ("POST", "PUT"):
                kw["json"] = {"__matrix_probe__": 1}
        else:
            client, kw = self.web, {}
        return client.open(url, method=row.http, **kw), real

    def _methods(self, row):
        if not hasattr(self, "_endpoint_methods"):
            self._endpoint_methods = {}
            for r in self.app.url_map.iter_rules():
                self._endpoint_methods.setdefault(r.endpoint, set()).update(r.methods)
        return self._endpoint_methods[row.endpoint]

    # -- reading the outcome ---------------------------------------------------------------------
    def outcome(self, rv):
        flashes = []
        with self.web.session_transaction() as sess:
            flashes = [text for _cat, text in sess.get("_flashes", [])]
            sess.pop("_flashes", None)
        if rv.status_code >= 500:
            return "error"
        if rv.status_code in (401, 403):
            return "denied"
        if 300 <= rv.status_code < 400 and urlparse(rv.headers.get("Location", "")).path.startswith("/login"):
            return "denied"
        if self.denied_flash in flashes:
            return "denied"
        return "allowed"


@pytest.fixture(scope="module")
def callers(app, probe_file):
    return {name: Caller(app, name, probe_file) for name in USERS}


# ---- the tests ----------------------------------------------------------------------------------
def test_every_permission_view_pair_is_in_the_policy(app):
    with app.app_context():
        sm = app.appbuilder.sm
        pairs = sorted({(pv.view_menu.name, pv.permission.name)
                        for pv in sm.session.query(sm.permissionview_model).all()})
    missing = [f"{v}.{p}" for v, p in pairs if not policy.is_known(v, p)]
    assert not missing, "FAB permission-view pairs without a policy entry:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("role", ["Admin", "OperatorAdmin", "OperatorStaff"])
def test_roles_hold_exactly_what_the_policy_allows(app, role):
    with app.app_context():
        sm = app.appbuilder.sm
        pairs = {(pv.view_menu.name, pv.permission.name) for pv in sm.session.query(sm.permissionview_model).all()}
        held = {(pv.view_menu.name, pv.permission.name) for pv in sm.find_role(role).permissions}
    wanted = {(v, p) for v, p in pairs if role in policy.roles_allowed(v, p)}
    assert not held - wanted, f"{role} holds beyond the policy: {sorted(held - wanted)}"
    assert not wanted - held, f"{role} lacks what the policy allows: {sorted(wanted - held)}"


def test_no_bulk_delete_on_views_without_delete(app):
    """A list whose rows may not be deleted (orders, bills, logs, ...) offers no bulk delete to
    anyone: the policy must say NOBODY for its ``muldelete`` action."""
    wrong = []
    for view in app.appbuilder.baseviews:
        if "muldelete" in (getattr(view, "actions", None) or {}) and "can_delete" not in view.base_permissions:
            if policy.audience(view.class_permission_name, "muldelete") != policy.NOBODY:
                wrong.append(view.class_permission_name)
    assert not wrong, f"bulk delete allowed on views without can_delete: {wrong}"


def test_rules_map_to_the_policy(app):
    _, missing = build_rows(app)
    assert not missing, "the permission policy lacks:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("username", list(USERS))
def test_permission_matrix(app, rows, callers, username):
    caller = callers[username]
    wrong, checked = [], 0
    for row in rows:
        allowed = expected_allowed(row, caller.role_names)
        try:
            result = caller.request(row, allowed)
        except Exception as exc:  # an error propagated by the test client: report it with the rest
            result = exc
        if result is None:
            continue
        checked += 1
        if isinstance(result, Exception):
            wrong.append(f"{row.label()}: expected {'allowed' if allowed else 'denied'}, raised {result!r}")
            continue
        rv, real = result
        got = caller.outcome(rv)
        if got == "allowed" and not allowed and rv.status_code == 404 and (real or not PK_ARG.search(row.rule)):
            got = "denied"  # a closed route, or a row hidden from the caller: not reachable either
        want = "allowed" if allowed else "denied"
        if got != want:
            wrong.append(f"{row.label()}: expected {want}, got {got} (HTTP {rv.status_code})")
        elif allowed and real and not (200 <= rv.status_code < 400):
            wrong.append(f"{row.label()}: allowed on an existing row but answered HTTP {rv.status_code}")
    assert checked > 100
    assert not wrong, f"{username}: {len(wrong)} outcome(s) differ from the policy:\n  " + "\n  ".join(wrong)


def test_public_endpoints_answer_anonymously(app, rows, callers):
    caller = callers["anonymous"]
    client = app.test_client()
    wrong = []
    for row in rows:
        if row.view_menu is not None:
            continue
        assert policy.endpoint_audience(row.endpoint) == policy.PUBLIC
        kw = {"json": {}} if row.rule.startswith("/api/") and row.http == "POST" else {}
        rv = client.open(caller.url(row, MISSING_PK), method=row.http, **kw)
        if rv.status_code >= 500 or rv.status_code == 403:
            wrong.append(f"{row.label()}: HTTP {rv.status_code}")
    assert not wrong, "\n  ".join(wrong)

"""Revocable admin sessions and API tokens (Redis), logout by POST, the JWT login rate limit.

Flask's session is a signed cookie: by itself a saved copy stays valid after logout and after a
password change. Two Redis keys make it revocable:

* ``cpms:auth:sid:<sid>`` -> user id: one per browser login, expiring after SESSION_LIFETIME.
  The cookie carries the sid; logout deletes the key, so a saved copy of the cookie is refused.
* ``cpms:auth:epoch:<user id>`` -> a random token, the user's auth epoch. It is stamped into the
  session at login and into every JWT (claim ``cpms_ep``, access and refresh tokens). A password
  change renews it: every session and every JWT issued before is refused (the session that made
  the change is re-stamped and stays logged in). A missing key (Redis flushed) refuses as well:
  fail closed, the user logs in again.

Checked on every request: a session by Flask-Login's user loader (one MGET), a JWT by
Flask-JWT-Extended's ``token_in_blocklist_loader`` (one GET). A password change is noticed on the
model (``ab_user.password`` set on an existing user, acted on after the commit), so every path
that changes a password revokes: FAB's reset views, our account services, the CLI.

Logout ends this browser session only; the user's API tokens stay valid until a password change
(integrators' tokens must not die when a person logs out of the admin).
"""
import hmac
import secrets

from flask import current_app, has_request_context, jsonify, make_response, redirect, request, session
from flask_appbuilder.security.views import AuthDBView as FabAuthDBView
from flask_appbuilder.views import expose
from flask_login import current_user, user_logged_in, user_logged_out

from app.extensions import get_redis

SID_KEY = "cpms:auth:sid:{}"
EPOCH_KEY = "cpms:auth:epoch:{}"
SESSION_SID = "_cpms_sid"
SESSION_EPOCH = "_cpms_ep"
JWT_CLAIM = "cpms_ep"
_PENDING = "cpms_auth_revoke"  # Session.info key: user ids whose password changed in this transaction


# ---------------------------------------------------------------- epochs and session ids


def user_epoch(user_id, create=False):
    """The user's current auth epoch (str), None if there is none; ``create`` makes one if missing."""
    r = get_redis()
    key = EPOCH_KEY.format(int(user_id))
    if create:
        r.set(key, secrets.token_hex(16), nx=True)
    value = r.get(key)
    return value.decode() if value is not None else None


def revoke_user(user_id):
    """Refuse every session and JWT of the user issued so far. The current request's session is
    re-stamped when it belongs to that user (changing one's own password keeps one logged in)."""
    epoch = secrets.token_hex(16)
    get_redis().set(EPOCH_KEY.format(int(user_id)), epoch)
    if has_request_context() and session.get("_user_id") == str(user_id) and session.get(SESSION_SID):
        session[SESSION_EPOCH] = epoch
    return epoch


def start_session(user):
    """A browser login: a new server-side session id and the user's epoch in the cookie."""
    end_session()
    sid = secrets.token_urlsafe(32)
    ttl = int(current_app.config["SESSION_LIFETIME"].total_seconds())
    get_redis().set(SID_KEY.format(sid), str(user.id), ex=ttl)
    session[SESSION_SID] = sid
    session[SESSION_EPOCH] = user_epoch(user.id, create=True)


def end_session():
    sid = session.pop(SESSION_SID, None)
    session.pop(SESSION_EPOCH, None)
    if sid:
        get_redis().delete(SID_KEY.format(sid))


def session_is_valid(user_id):
    sid, epoch = session.get(SESSION_SID), session.get(SESSION_EPOCH)
    if not sid or not epoch:
        return False
    owner, current = get_redis().mget(SID_KEY.format(sid), EPOCH_KEY.format(int(user_id)))
    return (owner is not None and owner.decode() == str(user_id) and current is not None
            and hmac.compare_digest(current.decode(), str(epoch)))


def load_session_user(user_id):
    """Flask-Login's user loader: FAB's (active users only) plus the server-side session check."""
    user = current_app.appbuilder.sm.load_user(user_id)
    if user is None or not session_is_valid(user.id):
        return None
    return user


# ---------------------------------------------------------------- JWT


def _jwt_claims(identity):
    return {JWT_CLAIM: user_epoch(identity, create=True)}


def _jwt_revoked(_jwt_header, jwt_payload):
    claim = jwt_payload.get(JWT_CLAIM)
    try:
        current = user_epoch(jwt_payload["sub"])
    except (KeyError, TypeError, ValueError):
        return True
    return not claim or current is None or not hmac.compare_digest(current, str(claim))


# ---------------------------------------------------------------- password changes


def _on_password_set(target, _value, _oldvalue, _initiator):
    if getattr(target, "id", None) is None:  # a user being created has no session yet
        return
    from sqlalchemy.orm import object_session

    db_session = object_session(target)
    if db_session is None:
        revoke_user(target.id)
    else:
        db_session.info.setdefault(_PENDING, set()).add(target.id)


def _after_commit(db_session):
    for user_id in db_session.info.pop(_PENDING, ()):
        revoke_user(user_id)


def _after_transaction_end(db_session, transaction):
    if transaction.parent is None:  # the outermost transaction ended without a commit: forget
        db_session.info.pop(_PENDING, None)


_listening = False


def _listen_for_password_changes():
    global _listening
    if _listening:
        return
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    event.listen(User.password, "set", _on_password_set, propagate=True)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_end", _after_transaction_end)
    _listening = True


# ---------------------------------------------------------------- logout by POST


class AuthDBView(FabAuthDBView):
    """FAB's login view; logout only by POST (with the CSRF token when CSRF is on). GET /logout/
    shows a page whose button POSTs, so a link or an <img> on another site cannot log one out and
    a stale bookmark still works. Same class name as FAB's: the endpoints stay ``AuthDBView.*``."""

    @expose("/logout/", methods=["GET", "POST"])
    def logout(self):
        if request.method != "POST":
            if not current_user.is_authenticated:
                return redirect(self.appbuilder.get_url_for_login)
            return self.render_template("cpms/logout.html", appbuilder=self.appbuilder)
        return super().logout()


# ---------------------------------------------------------------- wiring


def _too_many_logins(_request_limit):
    from flask_babel import gettext

    return make_response(jsonify(message=gettext("Too many login attempts, try again later.")), 429)


def _rate_limit_jwt_login(app, sm):
    """The JWT login gets the form login's limit (AUTH_RATE_LIMIT per client address, counted in
    the limiter's Redis storage). FAB limits only its login view's blueprint."""
    if not sm.is_auth_limited:
        return
    endpoint = f"{sm.security_api.__name__}.login"
    view = app.view_functions.get(endpoint)
    if view is None:  # FAB_ADD_SECURITY_VIEWS = False: no JWT login at all
        return
    app.view_functions[endpoint] = sm.limiter.limit(
        sm.auth_rate_limit, methods=["POST"], on_breach=_too_many_logins)(view)
    # FAB limits every POST of its login view's blueprint: logout (now a POST) must not use up
    # the login attempts of an address.
    if sm.auth_view is not None:
        logout_endpoint = f"{sm.auth_view.endpoint}.logout"
        sm.limiter.request_filter(lambda: request.endpoint == logout_endpoint)


def init_app(app, appbuilder):
    """Hook everything into an app built by create_app (after AppBuilder.init_app)."""
    sm = appbuilder.sm
    _listen_for_password_changes()
    sm.lm.user_loader(load_session_user)
    sm.jwt_manager.additional_claims_loader(_jwt_claims)
    sm.jwt_manager.token_in_blocklist_loader(_jwt_revoked)
    user_logged_in.connect(_on_login, app)
    user_logged_out.connect(_on_logout, app)
    _rate_limit_jwt_login(app, sm)


def _on_login(_app, user=None, **_kw):
    start_session(user)


def _on_logout(_app, user=None, **_kw):
    end_session()

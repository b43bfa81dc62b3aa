"""Security manager: our user model and screens; API-key users re-loaded as our user."""
from flask import g
from flask_appbuilder.security.sqla.manager import SecurityManager

from app.security.models import CpmsUser
from app.security.sessions import AuthDBView
from app.security.views import CpmsUserDBModelView, ResetMyPasswordView, ResetPasswordView


class CpmsSecurityManager(SecurityManager):
    user_model = CpmsUser
    userdbmodelview = CpmsUserDBModelView
    userstatschartview = None  # FAB's chart loads Google's CDN (fab-guide §4)
    resetmypasswordview = ResetMyPasswordView  # asks for the current password
    resetpasswordview = ResetPasswordView      # others' passwords: platform admin / own operator only

    authdbview = AuthDBView  # logout by POST only (app/security/sessions.py)

    def validate_api_key(self, api_key_string):
        user = super().validate_api_key(api_key_string)
        if user is not None and not isinstance(user, self.user_model):
            user = self.get_user_by_id(user.id)
            g.user = user
        return user

    def get_user_roles(self, user):
        """FAB counts the roles of a user's groups too. Groups are platform-only and posts replace
        them here, so a user of an operator only ever has the roles given to it directly: no group
        membership can lift a tenant to a role it was not granted."""
        if not getattr(user, "is_authenticated", False):
            return super().get_user_roles(user)
        if not hasattr(user, "operator_id"):  # FAB relations return the base User (fab-guide §2.1)
            user = self.get_user_by_id(user.id) or user
        if getattr(user, "operator_id", None) is not None:
            return list(user.roles)
        return super().get_user_roles(user)

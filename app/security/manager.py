"""Security manager: our user model and screens; API-key users re-loaded as our user."""
from flask import g
from flask_appbuilder.security.sqla.manager import SecurityManager

from app.security.models import CpmsUser
from app.security.views import CpmsUserDBModelView


class CpmsSecurityManager(SecurityManager):
    user_model = CpmsUser
    userdbmodelview = CpmsUserDBModelView
    userstatschartview = None  # FAB's chart loads Google's CDN (fab-guide §4)

    def validate_api_key(self, api_key_string):
        user = super().validate_api_key(api_key_string)
        if user is not None and not isinstance(user, self.user_model):
            user = self.get_user_by_id(user.id)
            g.user = user
        return user

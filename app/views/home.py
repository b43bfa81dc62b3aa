"""The index page: logged-in staff land on the dashboard (首页), others on the login page."""
from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose


class HomeIndexView(IndexView):
    @expose("/")
    def index(self):
        if not getattr(g, "user", None) or not g.user.is_authenticated:
            return redirect(url_for("AuthDBView.login"))
        return redirect(url_for("DashboardView.list"))

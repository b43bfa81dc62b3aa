"""首页: overview figures of the caller's scope."""
from flask import redirect, url_for
from flask_appbuilder import IndexView, expose

from app.services import dashboard


class HomeIndexView(IndexView):
    index_template = "cpms/home.html"

    @expose("/")
    def index(self):
        from flask import g

        if not getattr(g, "user", None) or not g.user.is_authenticated:
            return redirect(url_for("AuthDBView.login"))
        return self.render_template(self.index_template, overview=dashboard.overview())

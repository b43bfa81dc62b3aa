"""Serves uploaded files (station photos, fault report photos) to logged-in staff."""
import os

from flask import current_app, send_from_directory
from flask_appbuilder import BaseView, expose, has_access


class UploadsView(BaseView):
    route_base = "/uploads"
    default_view = "serve"

    @expose("/<path:filename>")
    @has_access
    def serve(self, filename):
        return send_from_directory(os.path.abspath(current_app.config["UPLOAD_FOLDER"]), filename)

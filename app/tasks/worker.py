"""RQ worker that runs every job inside a Flask app context (fab-guide §9.1). Not monkey-patched."""
from rq import Worker

_app = None


def get_app():
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


class AppContextWorker(Worker):
    def perform_job(self, *args, **kwargs):
        app = get_app()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose(close=False)  # never reuse the parent's pooled sockets after fork
            return super().perform_job(*args, **kwargs)

"""RQ workers that run every job inside a Flask app context (fab-guide §9.1). Not monkey-patched.

Two kinds, picked by ``RQ_FORK`` (default off):
- :class:`AppContextSimpleWorker` runs jobs in the worker process itself: no fork and no new
  database connection per job (settlement: ~70 orders/s against ~8 with a fork per job, see
  bench/results/settlement_throughput.json). A job killed with its process is retried by RQ's
  abandoned-job handling like any other.
- :class:`AppContextWorker` forks a work horse per job (isolation from crashing jobs).
"""
from rq import SimpleWorker, Worker

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


class AppContextSimpleWorker(SimpleWorker):
    def perform_job(self, *args, **kwargs):
        with get_app().app_context():
            return super().perform_job(*args, **kwargs)


def make_worker(queues, connection):
    app = get_app()
    cls = AppContextWorker if app.config.get("RQ_FORK") else AppContextSimpleWorker
    return cls(queues, connection=connection)

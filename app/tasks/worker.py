"""RQ workers that run every job inside a Flask app context (fab-guide §9.1). Not monkey-patched.

Two kinds, picked by ``RQ_FORK`` (default off):
- :class:`AppContextSimpleWorker` runs jobs in the worker process itself: no fork and no new
  database connection per job (settlement: ~70 orders/s against ~8 with a fork per job, see
  bench/results/settlement_throughput.json). A settlement killed with its process is settled by
  the settlement watchdog (``app.tasks.settlement.settle_stalled``, cron) within a minute.
- :class:`AppContextWorker` forks a work horse per job (isolation from crashing jobs).

Children die with the worker: the scheduler process (``work(with_scheduler=True)``) and the work
horses ask the kernel for a signal when their parent dies (``PR_SET_PDEATHSIG``), so a worker
killed with SIGKILL leaves no scheduler holding the scheduler lock and no horse running on.

Both measure their jobs (durations, failures) for Prometheus: see app/tasks/metrics.py.
"""
import ctypes
import os
import signal

from rq import SimpleWorker, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler

from app.tasks.metrics import MeasuredJobs

PR_SET_PDEATHSIG = 1

_app = None


def get_app():
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def die_with_parent(sig=signal.SIGTERM, parent_pid=None) -> bool:
    """Linux: deliver ``sig`` to this process when its parent dies. ``parent_pid``: the parent it
    must have (a parent that died before this call gets the signal sent right away). False where
    the kernel has no such call."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return True


class ChildScheduler(RQScheduler):
    """RQ's scheduler process, ended (SIGTERM: it releases its locks) when its worker dies."""

    _parent_pid = None

    def start(self):
        self._parent_pid = os.getpid()
        return super().start()

    def work(self):
        die_with_parent(signal.SIGTERM, self._parent_pid)
        return super().work()


class _ChildrenDieWithWorker:
    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=DEFAULT_LOGGING_DATE_FORMAT,
                         log_format=DEFAULT_LOGGING_FORMAT):
        """rq's ``Worker._start_scheduler`` with :class:`ChildScheduler`."""
        self.scheduler = ChildScheduler(self.queues, connection=self.connection,
                                        logging_level=logging_level if logging_level is not None else self.log.level,
                                        date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()


class AppContextWorker(MeasuredJobs, _ChildrenDieWithWorker, Worker):
    _fork_parent = None

    def fork_work_horse(self, job, queue):
        self._fork_parent = os.getpid()
        return super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        die_with_parent(signal.SIGKILL, self._fork_parent)   # the job's transaction dies with it
        return super().main_work_horse(job, queue)

    def perform_job(self, *args, **kwargs):
        app = get_app()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose(close=False)  # never reuse the parent's pooled sockets after fork
            return super().perform_job(*args, **kwargs)


class AppContextSimpleWorker(MeasuredJobs, _ChildrenDieWithWorker, SimpleWorker):
    def perform_job(self, *args, **kwargs):
        with get_app().app_context():
            return super().perform_job(*args, **kwargs)


def make_worker(queues, connection):
    app = get_app()
    cls = AppContextWorker if app.config.get("RQ_FORK") else AppContextSimpleWorker
    return cls(queues, connection=connection)

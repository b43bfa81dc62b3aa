"""Worker process metrics (Prometheus, ``prometheus_client``), served on the worker's own port.

``python run.py worker`` serves ``GET /metrics`` on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT``
(default 127.0.0.1:9109; port 0: none), as a gateway node serves its own. Several workers on one
host need one port each (``WORKER_METRICS_PORT`` in ``/etc/cpms/worker-N.env``); a worker whose port
is taken logs it and works on without metrics.

- ``cpms_worker_job_seconds{queue,job}``: job durations (``job``: the job's function), measured in the
  worker process around the execution (a forked work horse included);
- ``cpms_worker_job_failures_total{queue,job}``: executions that did not finish (the job raised, timed
  out or its work horse died; an execution RQ retries counts too);
- read at scrape time: ``cpms_worker_queue_depth{queue}`` (jobs waiting), ``cpms_worker_failed_jobs{queue}``
  (RQ's failed-job registry), ``cpms_settlement_lag_seconds`` (age of the oldest finished order not
  settled yet, 0 when there is none: one indexed ``min()`` over the few ``finished`` orders).
"""
import logging
import time

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)
disable_created_metrics()

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

JOB_SECONDS = Histogram("cpms_worker_job_seconds", "RQ job durations by queue and job function.",
                        ["queue", "job"], buckets=BUCKETS)
JOB_FAILURES = Counter("cpms_worker_job_failures", "RQ job executions that did not finish, by queue and job.",
                       ["queue", "job"])


def observe_job(job, queue, seconds: float) -> None:
    """After an execution of ``job`` (its status refreshed from Redis): its duration, and a failure
    unless it finished."""
    from rq.job import JobStatus

    name = job.func_name or "unknown"
    JOB_SECONDS.labels(queue.name, name).observe(seconds)
    try:
        status = job.get_status(refresh=True)
    except Exception:                       # the job expired meanwhile: it ran, its outcome is gone
        return
    if status != JobStatus.FINISHED:
        JOB_FAILURES.labels(queue.name, name).inc()


class ScrapeCollector:
    """Queue depths and the settlement lag, read when Prometheus scrapes."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []                           # not read at registration (no Redis or database then)

    def collect(self):
        from rq import Queue
        from rq.registry import FailedJobRegistry
        from sqlalchemy import func, select

        from app.extensions import db, get_redis
        from app.models import ChargeOrder
        from app.services import clock

        depth = GaugeMetricFamily("cpms_worker_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
        failed = GaugeMetricFamily("cpms_worker_failed_jobs", "Jobs in each RQ queue's failed-job registry.",
                                   labels=["queue"])
        lag = GaugeMetricFamily("cpms_settlement_lag_seconds",
                                "Age of the oldest finished order not settled yet (0: none).")
        with self.app.app_context():
            try:
                redis = get_redis()
                for name in self.app.config["RQ_QUEUES"]:
                    queue = Queue(name, connection=redis)
                    depth.add_metric([name], queue.count)
                    failed.add_metric([name], FailedJobRegistry(queue=queue).count)
            except Exception:               # a broken reading must never break the scrape
                log.exception("worker metrics: RQ queues unreadable")
            try:
                oldest = db.session.scalar(select(func.min(ChargeOrder.ended_at))
                                           .where(ChargeOrder.status == "finished"))
                lag.add_metric([], max(0.0, (clock.utcnow() - oldest).total_seconds()) if oldest else 0.0)
            except Exception:
                log.exception("worker metrics: settlement lag unreadable")
            finally:
                db.session.remove()
        yield from (depth, failed, lag)


_collector = None


def serve(app):
    """Register the scrape-time collector for ``app`` and serve ``/metrics`` on the configured port
    (a daemon thread). Returns the port, or None (port 0, or taken)."""
    global _collector
    if _collector is None:
        _collector = ScrapeCollector(app)
        REGISTRY.register(_collector)
    port = int(app.config["WORKER_METRICS_PORT"])
    if not port:
        return None
    host = app.config["WORKER_METRICS_HOST"]
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        log.error("worker metrics endpoint %s:%s not started: %s", host, port, exc)
        return None
    log.info("worker metrics on http://%s:%s/metrics", host, server.server_port)
    return server.server_port


class MeasuredJobs:
    """Worker mixin: :func:`observe_job` around every execution (in the worker, not the work horse)."""

    def execute_job(self, job, queue):
        started = time.perf_counter()
        try:
            return super().execute_job(job, queue)
        finally:
            observe_job(job, queue, time.perf_counter() - started)

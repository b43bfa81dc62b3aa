"""Platform health metrics (issue 12 §7): the web's ``GET /metrics`` (token), a real worker process's
metrics port (a failing RQ job on real Redis), and the Grafana dashboard in ``deploy/grafana/cpms.json``
referencing only metrics some process exports."""
import json
import re
import urllib.request
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from sqlalchemy import update

from app.extensions import db, get_redis
from app.gateway.metrics import METRICS as GATEWAY_METRICS
from tests.integration.gateway.conftest import ROOT, WorkerProcess, free_port, wait_until

TOKEN = "scrape-token-1"
DASHBOARD = ROOT / "deploy" / "grafana" / "cpms.json"


def samples(text):
    """{(sample name, frozenset(labels)): value}"""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def exported_names(text):
    """Every series name a scrape can carry (a labelled metric without children yet included)."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


@pytest.fixture
def token(app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    return {"Authorization": f"Bearer {TOKEN}"}


def scrape_web(app, headers):
    rv = app.test_client().get("/metrics", headers=headers)
    assert rv.status_code == 200, rv.status_code
    assert rv.headers["Content-Type"].startswith("text/plain")
    return rv.get_data(as_text=True)


def test_web_metrics_histogram_by_endpoint(app, admin_client, token):
    before = samples(scrape_web(app, token))
    count = ("cpms_web_request_seconds_count", frozenset({"endpoint": "healthz"}.items()))
    for _ in range(3):
        assert admin_client.get("/healthz").status_code == 200
    assert admin_client.get("/stationview/list/").status_code == 200
    assert admin_client.get("/no/such/page/4711").status_code == 404
    after = samples(scrape_web(app, token))
    assert after[count] - before.get(count, 0) == 3
    ok = ("cpms_web_requests_total", frozenset({"endpoint": "healthz", "status": "200"}.items()))
    assert after[ok] - before.get(ok, 0) == 3
    inf = ("cpms_web_request_seconds_bucket", frozenset({"endpoint": "healthz", "le": "+Inf"}.items()))
    assert after[inf] == after[count]
    assert ("cpms_web_request_seconds_count", frozenset({"endpoint": "StationView.list"}.items())) in after
    # labels are URL rule endpoints, never raw paths
    endpoints = {dict(labels).get("endpoint") for name, labels in after if name.startswith("cpms_web_")}
    assert "unmatched" in endpoints
    assert not [e for e in endpoints if e and "/" in e]


def test_web_metrics_need_the_token(app, token):
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    app.config["METRICS_TOKEN"] = None
    assert client.get("/metrics", headers=token).status_code == 404        # no token configured: not exposed


@pytest.fixture(scope="module", params=["simple", "fork"])
def worker(app, request):
    """A real ``run.py worker`` with its metrics port: jobs in the worker process, or (``RQ_FORK``) in
    a forked work horse each (measured in the worker all the same)."""
    port = free_port()
    proc = WorkerProcess(app, f"metrics-{request.param}", WORKER_METRICS_PORT=port,
                         RQ_FORK="1" if request.param == "fork" else "0")

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rv:
            return rv.read().decode()

    def up():
        assert proc.proc.poll() is None, proc.log()
        try:
            return scrape()
        except OSError:
            return None

    wait_until(up, 30, 0.2, "worker metrics port")
    yield scrape
    proc.stop()


def test_worker_job_failure_increments_the_counter(app, worker):
    failures = ("cpms_worker_job_failures_total", frozenset({"queue": "default", "job": "operator.truediv"}.items()))
    durations = ("cpms_worker_job_seconds_count", frozenset({"queue": "default", "job": "operator.add"}.items()))
    before = samples(worker())
    with app.app_context():
        queue = Queue("default", connection=get_redis())
        failing = queue.enqueue("operator.truediv", 1, 0)
        passing = queue.enqueue("operator.add", 1, 2)
    wait_until(lambda: samples(worker()).get(failures, 0) - before.get(failures, 0) == 1, 20, 0.2,
               "a failure counted")
    wait_until(lambda: samples(worker()).get(durations, 0) - before.get(durations, 0) == 1, 20, 0.2,
               "a duration observed")
    with app.app_context():
        assert failing.get_status(refresh=True) == "failed"
        assert passing.get_status(refresh=True) == "finished" and passing.return_value() == 3
    after = samples(worker())
    passed = ("cpms_worker_job_failures_total", frozenset({"queue": "default", "job": "operator.add"}.items()))
    assert after.get(passed, 0) == before.get(passed, 0)                    # a finished job is no failure
    for queue in app.config["RQ_QUEUES"]:
        assert ("cpms_worker_queue_depth", frozenset({"queue": queue}.items())) in after
        assert ("cpms_worker_failed_jobs", frozenset({"queue": queue}.items())) in after
    assert after[("cpms_worker_failed_jobs", frozenset({"queue": "default"}.items()))] >= 1
    assert after[("cpms_settlement_lag_seconds", frozenset())] >= 0


def test_worker_reports_the_settlement_lag(app, worker):
    """The settlement lag is read at scrape time: a finished order not settled yet gives its age."""
    from app.models import ChargeOrder
    from app.services import clock
    from app.services.settlement import settle_order
    from tests.integration.orders.test_settlement import fresh, make_order, new_member

    lag = ("cpms_settlement_lag_seconds", frozenset())
    before = samples(worker())[lag]          # other tests may have left finished orders behind
    with app.app_context():
        oid = make_order(new_member())                      # priced: finished
        order = fresh(ChargeOrder, oid)
        assert order.status == "finished"
        ended = datetime(2001, 1, 1, 2, 0)                  # older than anything else: the lag is its age
        db.session.execute(update(ChargeOrder).where(ChargeOrder.id == oid).values(ended_at=ended))
        db.session.commit()
    try:
        expected = (clock.utcnow() - ended).total_seconds()
        assert expected <= samples(worker())[lag] <= expected + 5
    finally:
        with app.app_context():
            settle_order(oid)
    after = samples(worker())[lag]
    assert after < expected and (after == 0 if before == 0 else after <= before + 60)


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset"}


def referenced_metrics(expr):
    expr = re.sub(r'"[^"]*"', "", expr)                     # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                   # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue                                         # a function or a keyword
        names.add(match.group())
    return names


def test_grafana_dashboard_references_only_exported_metrics(app, token, worker):
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    referenced = set().union(*(referenced_metrics(e) for e in exprs))
    web = exported_names(scrape_web(app, token))
    workers = exported_names(worker())
    gateway = set()
    for name, (kind, _help) in GATEWAY_METRICS.items():
        gateway |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    assert referenced - (web | workers | gateway) == set()
    # every process has panels, and the metrics are on the board
    assert referenced & web and referenced & gateway and referenced & workers
    for name in ("cpms_web_request_seconds_bucket", "cpms_worker_queue_depth", "cpms_worker_job_failures_total",
                 "cpms_settlement_lag_seconds", "ykc_gateway_piles_online"):
        assert name in referenced

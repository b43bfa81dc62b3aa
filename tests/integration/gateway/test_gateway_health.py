"""``GET /healthz`` on a gateway node's metrics port, over a real ``python run.py gateway`` process:
200 while the node is registered in Redis, 503 as soon as its liveness key is gone (what the TCP
load balancer and the supervisor act on)."""
import json
import urllib.error
import urllib.request

import pytest

from app.gateway.registry import Registry
from tests.integration.gateway.conftest import GatewayProcess, wait_until


def _get(port, path="/healthz"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as rv:
            return rv.status, rv.headers, rv.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture
def health_node(app, redis, gw_station):
    # a long liveness key and a slow refresh: a withdrawn node stays unregistered during the test
    node = GatewayProcess(app, "gw-health", GATEWAY_NODE_TTL=120, GATEWAY_NODE_REFRESH=60).wait_ready(redis)
    yield node
    node.stop()


def test_gateway_healthz_answers_whether_the_node_is_registered(health_node, redis):
    status, headers, body = _get(health_node.metrics_port)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    detail = json.loads(body)
    assert detail["status"] == "ok" and detail["node"] == "gw-health"
    assert detail["registered"] is True and detail["redis"] == "ok"
    # /metrics still served on the same port
    status, _, body = _get(health_node.metrics_port, "/metrics")
    assert status == 200 and b"ykc_gateway_connections" in body
    # the node's liveness key disappears (e.g. the node stalled past its TTL): unhealthy at once
    Registry(redis).withdraw("gw-health")
    status, _, body = _get(health_node.metrics_port)
    assert status == 503, body
    detail = json.loads(body)
    assert detail["status"] == "error" and detail["registered"] is False and detail["redis"] == "ok"
    # announced again: healthy again
    Registry(redis).announce("gw-health", 120)
    wait_until(lambda: _get(health_node.metrics_port)[0] == 200, 5, message="healthy after announce")
    assert health_node.proc.poll() is None

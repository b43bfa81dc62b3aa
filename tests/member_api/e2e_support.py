"""Helpers of the member journey end-to-end test (not fixtures): the web process with its public address
known before it starts (WeChat Pay's notify URL), a JSON client of the member API over real HTTP, and
WeChat Pay's side of a payment (the payer pays; WeChat POSTs the signed notification to our notify URL)."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.integration.gateway.conftest import ROOT, free_port, process_env
from tests.interconnect.e2e_support import WebProcess

API = "/api/app/v1"


class PublicWebProcess(WebProcess):
    """``python run.py web`` whose PUBLIC_BASE_URL is its own address (so notify_url reaches it)."""

    def __init__(self, app, name: str = "web", **overrides):  # noqa: D107 - same as WebProcess, port chosen first
        self.port = free_port()
        self.log_path = Path(app.config["INSTANCE_DIR"]) / f"{name}.log"
        self._log = open(self.log_path, "w")
        env = process_env(app, WEB_HOST="127.0.0.1", WEB_PORT=self.port, PUBLIC_BASE_URL=self.url, **overrides)
        self.proc = subprocess.Popen([sys.executable, "run.py", "web"], cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)


class MemberClient:
    """The member app: JSON requests to ``/api/app/v1`` with the member's bearer token once logged in."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body=None, query: dict | None = None):
        url = self.base_url + API + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept-Language", "zh")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        return status, (json.loads(raw) if raw else None)

    def get(self, path: str, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body=None):
        return self.request("POST", path, {} if body is None else body)

    def ok(self, method: str, path: str, body=None, expect: int = 200, **query):
        """The body of a request that must answer ``expect``."""
        status, answer = self.request(method, path, body, query or None)
        assert status == expect, (method, path, status, answer)
        return answer


def wechat_pays(fake, payment_no: str) -> int:
    """WeChat Pay's side of a JSAPI payment: the payer pays, then WeChat POSTs the notification (resource
    encrypted under the API v3 key, signed with the platform key) to the notify_url of the prepay request.
    Returns the HTTP status our notify endpoint answered."""
    txn = fake.pay(payment_no)
    headers, body = fake.notification(txn)
    url = fake.orders[payment_no]["request"]["notify_url"]
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code

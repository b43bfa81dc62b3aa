"""Processes and fixtures for the interconnect end-to-end tests: our web app served by gevent WSGI
(``python run.py web``) on an ephemeral port, a logged-in admin HTTP session, and a Partner row
wired to a :class:`~tests.interconnect.partner_platform.PartnerPlatform`."""
from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.integration.gateway.conftest import ROOT, free_port, process_env, wait_until
from tests.interconnect.partner_platform import Keys


class WebProcess:
    """``python run.py web`` (gevent WSGI) on 127.0.0.1 and a free port; output in a log file."""

    def __init__(self, app, name: str = "web", **overrides):
        self.port = free_port()
        self.log_path = Path(app.config["INSTANCE_DIR"]) / f"{name}.log"
        self._log = open(self.log_path, "w")
        env = process_env(app, WEB_HOST="127.0.0.1", WEB_PORT=self.port, **overrides)
        self.proc = subprocess.Popen([sys.executable, "run.py", "web"], cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> WebProcess:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"web exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    return resp.status == 200
            except (OSError, urllib.error.URLError):
                return False

        wait_until(ready, timeout, 0.2, "web process ready")
        return self

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class AdminSession:
    """A browser-like HTTP session (cookies, CSRF token from the forms) on a real web process."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect())

    def request(self, method: str, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data or {}, doseq=True).encode() if method == "POST" else None
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=dict(headers or {}))
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.read().decode("utf-8", errors="replace"), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace"), dict(exc.headers)

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, data: dict | None = None):
        return self.request("POST", path, data)

    def csrf(self, path: str = "/login/") -> str | None:
        status, html, _ = self.get(path)
        m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
        return m.group(1) if m else None

    def login(self, username: str, password: str) -> AdminSession:
        form = {"username": username, "password": password}
        token = self.csrf("/login/")
        if token:
            form["csrf_token"] = token
        status, body, _ = self.post("/login/", form)
        assert status == 302, (status, body[:500])
        return self


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def partner_keys(partner_code: str, our_code: str, tag: str) -> dict:
    """Eight distinct secrets for a Partner row (``tag`` keeps test partners apart)."""
    return {
        "partner_operator_code": partner_code, "our_operator_code": our_code,
        "operator_secret": f"they-issue-{tag}", "data_secret": f"TheirDataKey{tag:0>4}"[:16],
        "data_secret_iv": f"TheirDataIV0{tag:0>4}"[:16], "sig_secret": f"their-sig-{tag}",
        "our_operator_secret": f"we-issue-{tag}", "our_data_secret": f"OurDataSecret{tag:0>3}"[:16],
        "our_data_secret_iv": f"OurDataIVector{tag:0>2}"[:16], "our_sig_secret": f"our-sig-{tag}",
    }


def keys_for(fields: dict) -> tuple[Keys, Keys]:
    """(keys the partner uses to call us, keys it expects from us) from a Partner row's fields."""
    calling_us = Keys(fields["partner_operator_code"], fields["our_operator_secret"], fields["our_data_secret"],
                      fields["our_data_secret_iv"], fields["our_sig_secret"])
    being_called = Keys(fields["our_operator_code"], fields["operator_secret"], fields["data_secret"],
                        fields["data_secret_iv"], fields["sig_secret"])
    return calling_us, being_called


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)

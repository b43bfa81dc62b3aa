"""A local WeChat API for the tests: a real HTTP server (``http.server`` in a thread) answering
``GET /sns/jscode2session`` as WeChat does.

``FakeWeChat.apps`` maps an AppID to its AppSecret; ``codes`` maps a ``wx.login`` code to the
(appid, openid, unionid) it stands for. A code is good once (then 40163 "code been used"), an
unknown code answers 40029, a wrong AppSecret 40125, an unknown AppID 40013, and
``busy_codes`` answer 45011 (rate limit). Every request is recorded in ``requests``.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeWeChat:
    def __init__(self):
        self.apps = {}
        self.codes = {}
        self.used = set()
        self.busy_codes = set()
        self.requests = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, query))
                if url.path != "/sns/jscode2session":
                    self._answer(404, {"errcode": 404, "errmsg": "not found"})
                    return
                self._answer(200, fake.answer(query))

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_code(self, code, appid, openid, unionid=None):
        self.codes[code] = (appid, openid, unionid)

    def answer(self, query):
        appid, secret, code = query.get("appid"), query.get("secret"), query.get("js_code")
        if query.get("grant_type") != "authorization_code":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if appid not in self.apps:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if self.apps[appid] != secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        if code in self.busy_codes:
            return {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
        with self._lock:
            if code in self.used:
                return {"errcode": 40163, "errmsg": "code been used"}
            found = self.codes.get(code)
            if found is None or found[0] != appid:
                return {"errcode": 40029, "errmsg": "invalid code"}
            self.used.add(code)
        body = {"openid": found[1], "session_key": "c2Vzc2lvbmtleQ=="}
        if found[2]:
            body["unionid"] = found[2]
        return body

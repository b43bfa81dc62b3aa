"""T/CEC 102 client: we call a partner platform (pushes, query_token, query_stations_info,
check_charge_orders).

- URL: ``partner.base_url`` + the partner's base path (not repeated when the URL already ends with it)
  + interface name; POST JSON ``application/json;charset=utf-8`` (stdlib ``urllib``, timeout
  ``TCEC_HTTP_TIMEOUT``).
- Envelope: :mod:`app.interconnect.codec` with ``partner_keys_theirs`` (the secrets the partner issued
  to us); payload keys mapped to the partner's dialect (:mod:`app.interconnect.dialect`).
- TimeStamp: local time (``app.services.clock``); Seq: per second and OperatorID, Redis INCR.
- Token: ``query_token`` result cached in Redis until 60 s before it expires; a Ret 4002 drops it,
  fetches a new one and repeats the call once.
- Every call is recorded in :class:`app.models.PushLog` (direction 'out'): the decrypted request and
  response with personal data masked, Ret, HTTP status, duration, attempts and status. A push passes
  its own row (created when it was queued) so a retried push updates that row and never adds a second.

The client commits the PushLog row itself (a record of the exchange even when the caller rolls back).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import inspect as sa_inspect

from app.extensions import db, get_redis
from app.interconnect import codec, dialect
from app.models import PushLog
from app.services import clock

TOKEN_KEY = "cpms:tcec:out:token:{}"      # partner id -> the AccessToken they issued us
SEQ_KEY = "cpms:tcec:out:seq:{}:{}"       # our OperatorID, TimeStamp -> counter
TOKEN_MARGIN = 60                         # seconds before expiry the cached token is renewed

class PushError(Exception):
    """A call that did not succeed: transport error, HTTP status != 200, or a T/CEC Ret != 0."""

    def __init__(self, message, *, ret=None, http_status=None):
        super().__init__(message)
        self.ret = ret
        self.http_status = http_status


def masked(payload):
    """The payload as the push log keeps it: numbers as JSON numbers, secrets and personal data masked
    (the same rule as the served side's log, ``app.services.interconnect.mask_payload``)."""
    from app.services.interconnect import mask_payload

    return mask_payload(wire_numbers(payload))


def interface_url(partner, interface: str) -> str:
    base = (partner.base_url or "").strip().rstrip("/")
    path = dialect.base_path(partner).rstrip("/")
    if path and not base.endswith(path):
        base += path
    return f"{base}/{interface}"


def timestamp_and_seq(keys: codec.Keys, redis=None) -> tuple[str, str]:
    redis = redis or get_redis()
    stamp = clock.local_now().strftime("%Y%m%d%H%M%S")
    key = SEQ_KEY.format(keys.operator_id, stamp)
    pipe = redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 5)
    n = pipe.execute()[0]
    return stamp, f"{(n - 1) % 9999 + 1:04d}"


def wire_numbers(value):
    """Decimals as JSON numbers (quantized values print with their digits: 0.62, 12.5)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, dict):
        return {k: wire_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_numbers(v) for v in value]
    return value


def _json_safe(value):
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class PartnerClient:
    def __init__(self, partner, redis=None, timeout=None):
        # a snapshot of the row's columns: no reload after every commit of the push log
        self.partner = SimpleNamespace(**{c.key: getattr(partner, c.key) for c in sa_inspect(type(partner)).columns})
        self.keys = codec.partner_keys_theirs(partner)
        self.redis = redis or get_redis()
        self.timeout = float(timeout if timeout is not None else current_app.config["TCEC_HTTP_TIMEOUT"])

    # ---- transport --------------------------------------------------------------------------
    def _post(self, interface, payload, token=None):
        """One HTTP exchange. Returns (http_status, decrypted response payload in our spelling, ret, msg,
        seq). Raises PushError."""
        stamp, seq = timestamp_and_seq(self.keys, self.redis)
        envelope = codec.build_request(self.keys, wire_numbers(dialect.to_wire(self.partner, payload)), stamp, seq)
        body = json.dumps(envelope).encode("utf-8")
        headers = {"Content-Type": "application/json;charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(interface_url(self.partner, interface), data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            raise PushError(f"HTTP {exc.code}", http_status=exc.code) from exc
        except OSError as exc:  # URLError, timeouts, refused connections
            reason = getattr(exc, "reason", exc)
            raise PushError(f"connection failed: {reason}") from exc
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise PushError("response is not JSON", http_status=status) from exc
        try:
            data = codec.open_response(self.keys, answer)
        except codec.TcecError as exc:
            raise PushError(exc.msg or f"Ret {exc.ret}", ret=exc.ret, http_status=status) from exc
        return status, dialect.from_wire(self.partner, data), seq

    # ---- token --------------------------------------------------------------------------------
    def token(self, renew=False) -> str:
        key = TOKEN_KEY.format(self.partner.id)
        if not renew:
            cached = self.redis.get(key)
            if cached:
                return cached.decode() if isinstance(cached, bytes) else cached
        data = self.call("query_token", {"OperatorID": self.keys.operator_id,
                                         "OperatorSecret": self.keys.operator_secret})
        if int(data.get("SuccStat", 1)) != 0 or not data.get("AccessToken"):
            raise PushError(f"query_token refused (FailReason {data.get('FailReason')})")
        ttl = int(data.get("TokenAvailableTime") or 7200)
        self.redis.set(key, data["AccessToken"], ex=max(1, ttl - TOKEN_MARGIN) if ttl > TOKEN_MARGIN * 2 else ttl)
        return data["AccessToken"]

    def forget_token(self):
        self.redis.delete(TOKEN_KEY.format(self.partner.id))

    # ---- one logged call -------------------------------------------------------------------------
    def call(self, interface, payload, *, log: PushLog | None = None, business_key=None, order_id=None) -> dict:
        """Call ``interface`` with ``payload`` (our spelling); returns the response payload (our spelling).
        Records the exchange in ``log`` (or a new PushLog row). Raises :class:`PushError`."""
        if log is None:
            log = PushLog(partner_id=self.partner.id, operator_id=self.partner.operator_id, direction="out",
                          interface=interface, business_key=business_key, order_id=order_id, status="pending",
                          attempts=0)
            db.session.add(log)
        log.attempts = (log.attempts or 0) + 1
        log.request_body = _json_safe(masked(payload))
        started = time.monotonic()
        try:
            if interface == "query_token":
                status, data, seq = self._post(interface, payload)
            else:
                try:
                    status, data, seq = self._post(interface, payload, self.token())
                except PushError as exc:
                    if exc.ret != codec.RET_TOKEN:
                        raise
                    self.forget_token()                       # 4002: a new token, one more try
                    status, data, seq = self._post(interface, payload, self.token(renew=True))
        except PushError as exc:
            log.duration_ms = int((time.monotonic() - started) * 1000)
            log.http_status, log.ret, log.msg = exc.http_status, exc.ret, str(exc)[:255]
            log.status = "failed"
            log.response_body = None
            db.session.commit()
            raise
        log.duration_ms = int((time.monotonic() - started) * 1000)
        log.http_status, log.ret, log.msg, log.seq = status, codec.RET_OK, "", seq
        log.response_body = _json_safe(masked(data))
        log.status = "success"
        log.next_retry_at = None
        db.session.commit()
        return data

"""A T/CEC 102 partner platform for tests, written from ``docs/tcec-protocol.md`` only.

Nothing here imports ``app``: the crypto (AES-128-CBC/PKCS#7 + Base64, HMAC-MD5) is done with
pycryptodome directly, so a bug in our codec cannot hide behind the same bug in the test double.

Two pieces:

- :class:`PartnerPlatform` — a real HTTP server (threaded ``wsgiref`` on 127.0.0.1, port 0) serving
  what a platform (新电途/快电/小桔/regulator) serves to a CPO: ``query_token``, the ``notification_*``
  interfaces, ``check_charge_orders``; and, as a CPO-like partner for our 获取充电站 pull,
  ``query_stations_info`` with paging over ``.stations``. It validates like a strict partner
  (envelope fields, Sig before decrypting, Bearer token, per-interface fields, decimal places) and
  records every accepted decrypted request in ``.received`` as ``(interface, data, headers)``;
  refused ones go to ``.rejected`` as ``(interface, ret, msg)``.
- :class:`PartnerClient` — the partner calling OUR endpoints: ``.token()``, ``.call(interface, data)``
  returning ``(Ret, Msg, data)`` after verifying our response Sig itself, with tampering options.

Numbers in received data are parsed as ``Decimal`` (floats never appear), so tests compare them
with the database's ``Decimal`` values directly.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from zoneinfo import ZoneInfo

from Crypto.Cipher import AES

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # envelope TimeStamp is local (China) time, spec §2.3
ENVELOPE_FIELDS = ("OperatorID", "Data", "TimeStamp", "Seq", "Sig")
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --------------------------------------------------------------------------- crypto (spec §2.5)

@dataclass(frozen=True)
class Keys:
    """One key set (spec §2.5). ``operator_id`` is the OperatorID of the caller using these keys."""

    operator_id: str
    operator_secret: str
    data_secret: str
    data_secret_iv: str
    sig_secret: str


def pkcs7_pad(raw: bytes) -> bytes:
    n = 16 - len(raw) % 16
    return raw + bytes([n]) * n


def pkcs7_unpad(raw: bytes) -> bytes:
    if not raw or len(raw) % 16:
        raise ValueError("ciphertext is not a whole number of blocks")
    n = raw[-1]
    if not 1 <= n <= 16 or raw[-n:] != bytes([n]) * n:
        raise ValueError("bad PKCS#7 padding")
    return raw[:-n]


def encrypt(keys: Keys, plaintext: str | bytes) -> str:
    raw = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    cipher = AES.new(keys.data_secret.encode("utf-8"), AES.MODE_CBC, iv=keys.data_secret_iv.encode("utf-8"))
    return base64.b64encode(cipher.encrypt(pkcs7_pad(raw))).decode("ascii")


def decrypt(keys: Keys, data: str) -> str:
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    cipher = AES.new(keys.data_secret.encode("utf-8"), AES.MODE_CBC, iv=keys.data_secret_iv.encode("utf-8"))
    return pkcs7_unpad(cipher.decrypt(raw)).decode("utf-8")


def hmac_md5(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.md5).hexdigest().upper()


def request_sig(keys: Keys, operator_id: str, data: str, timestamp: str, seq: str) -> str:
    return hmac_md5(keys.sig_secret, operator_id + data + timestamp + seq)


def response_sig(keys: Keys, ret: int, msg: str, data: str) -> str:
    return hmac_md5(keys.sig_secret, f"{int(ret)}{msg}{data}")


def to_json(obj) -> str:
    """Compact UTF-8 JSON; a ``Decimal`` is written as a JSON number with its exact digits."""
    return _DECIMAL_MARK.sub(lambda m: m.group(1), json.dumps(_mark_decimals(obj), ensure_ascii=False,
                                                                separators=(",", ":")))


_DECIMAL_MARK = re.compile(r'"\\u0000D([-0-9.]+)\\u0000"')


def _mark_decimals(value):
    if isinstance(value, Decimal):
        return f"\x00D{format(value, 'f')}\x00"
    if isinstance(value, dict):
        return {k: _mark_decimals(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark_decimals(v) for v in value]
    return value


def parse_json(text: str):
    return json.loads(text, parse_float=Decimal)


def local_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")


class SeqCounter:
    """``0001``–``9999``, restarting each second (spec §2.3)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def next(self, timestamp: str) -> str:
        with self._lock:
            n = self._counts.get(timestamp, 0) % 9999 + 1
            if len(self._counts) > 100:
                self._counts.clear()
            self._counts[timestamp] = n
            return f"{n:04d}"


# --------------------------------------------------------------------------- strict field checks

class Invalid(Exception):
    def __init__(self, ret: int, msg: str):
        super().__init__(msg)
        self.ret, self.msg = ret, msg


def _need(data: dict, field: str):
    if field not in data or data[field] is None:
        raise Invalid(4004, f"missing {field}")
    return data[field]


def _str(data, field, max_len=None, exact_len=None, pattern=None, optional=False):
    if optional and data.get(field) in (None, ""):
        return None
    value = _need(data, field)
    if not isinstance(value, str) or not value:
        raise Invalid(4004, f"{field} must be a non-empty string")
    if max_len and len(value) > max_len:
        raise Invalid(4004, f"{field} longer than {max_len}")
    if exact_len and len(value) != exact_len:
        raise Invalid(4004, f"{field} must be {exact_len} characters")
    if pattern and not pattern.fullmatch(value):
        raise Invalid(4004, f"{field} has a wrong format: {value!r}")
    return value


def _int(data, field, allowed=None, optional=False):
    if optional and field not in data:
        return None
    value = _need(data, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(4004, f"{field} must be an integer")
    if allowed is not None and value not in allowed:
        raise Invalid(4004, f"{field} not allowed: {value}")
    return value


def _num(data, field, places=None, optional=False):
    """A JSON number (never a string) with at most ``places`` decimals."""
    if optional and field not in data:
        return None
    value = _need(data, field)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Invalid(4004, f"{field} must be a JSON number, got {type(value).__name__}")
    if places is not None and isinstance(value, Decimal) and -value.as_tuple().exponent > places:
        raise Invalid(4004, f"{field} has more than {places} decimals: {value}")
    if value < 0:
        raise Invalid(4004, f"{field} is negative")
    return Decimal(value)


def _seq27(data, field):
    return _str(data, field, exact_len=27)


# --------------------------------------------------------------------------- the platform (server)

class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class PartnerPlatform:
    """A partner platform on a real HTTP port.

    ``operator_id``: the partner's own OperatorID (9 characters).
    ``keys_for_calling_us``: the key set its client uses when it calls our endpoints (``.client()``).
    ``keys_for_being_called``: the key set it expects from us when we call it; ``operator_id`` of
    that set is the OperatorID it expects in our envelopes and in our ``query_token`` (``None``:
    any 9-character ID), ``operator_secret`` is what our ``query_token`` must present.
    ``dialect``: ``"Sevice"`` (the standard) or ``"Service"`` — the spelling it requires in
    SevicePrice/SeviceMoney/TotalSeviceMoney. ``status_shape``: ``"object"`` or ``"array"`` for
    ``ConnectorStatusInfo`` of ``notification_stationStatus``. ``elec_money``: ``ElecMoney`` or
    ``ElectMoney`` in the charging snapshot.
    """

    def __init__(self, operator_id: str, keys_for_calling_us: Keys, keys_for_being_called: Keys, *,
                 dialect: str = "Sevice", status_shape: str = "object", elec_money: str = "ElecMoney",
                 base_path: str = "/evcs/v1.0/", token_ttl: int = 7200, timestamp_window: int | None = 300,
                 reject_replays: bool = True):
        assert dialect in ("Sevice", "Service") and status_shape in ("object", "array")
        assert elec_money in ("ElecMoney", "ElectMoney")
        self.operator_id = operator_id
        self.keys_for_calling_us = keys_for_calling_us
        self.keys = keys_for_being_called
        self.dialect, self.status_shape, self.elec_money = dialect, status_shape, elec_money
        self.base_path = "/" + base_path.strip("/") + "/"
        self.token_ttl, self.timestamp_window, self.reject_replays = token_ttl, timestamp_window, reject_replays
        self.received: list[tuple[str, dict, dict]] = []
        self.arrivals: list[tuple[float, str, dict]] = []   # (time.monotonic(), interface, data), accepted only
        self.rejected: list[tuple[str, int, str]] = []
        self.stations: list[dict] = []          # StationInfo dicts served by query_stations_info
        self.disputed_orders: set[str] = set()  # StartChargeSeq answered ConfirmResult 1
        self.planted_disputes: dict[str, dict] = {}  # StartChargeSeq -> our figures for check_charge_orders
        self.down = False                        # True: every request answers HTTP 503
        self.delay = 0.0                         # seconds to sleep before answering (slow partner)
        self._tokens: dict[str, float] = {}
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._port = 0

    # ---- lifecycle

    @property
    def url(self) -> str:
        """Base URL including the base path, without the trailing slash (``…/evcs/v1.0``)."""
        return f"http://127.0.0.1:{self._port}{self.base_path.rstrip('/')}"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> PartnerPlatform:
        self._server = make_server("127.0.0.1", self._port, self._wsgi, server_class=_ThreadingWSGIServer,
                                   handler_class=_Quiet)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"partner-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def refuse_connections(self) -> None:
        """Close the listening socket (connection refused) until :meth:`accept_connections`."""
        self.stop()

    def accept_connections(self) -> None:
        """Listen again on the same port."""
        deadline = time.monotonic() + 5
        while True:
            try:
                self.start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- switches and helpers for tests

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def dispute(self, start_charge_seq: str) -> None:
        """``notification_charge_order_info`` of this order answers ConfirmResult 1 (disputed)."""
        self.disputed_orders.add(start_charge_seq)

    def plant_dispute(self, start_charge_seq: str, total_power: Decimal, total_money: Decimal,
                      reason: int = 2) -> None:
        """``check_charge_orders`` containing this order reports it disputed with these figures."""
        self.planted_disputes[start_charge_seq] = {"TotalPower": Decimal(total_power),
                                                   "TotalMoney": Decimal(total_money), "DisputeReason": reason}

    def client(self, base_url: str) -> PartnerClient:
        return PartnerClient(base_url, self.keys_for_calling_us)

    def requests_for(self, interface: str) -> list[dict]:
        return [data for name, data, _ in list(self.received) if name == interface]

    def clear(self) -> None:
        self.received.clear()
        self.arrivals.clear()
        self.rejected.clear()

    # ---- WSGI

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down"]
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"POST only"]
        if not path.startswith(self.base_path) or "/" in path[len(self.base_path):]:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such path"]
        interface = path[len(self.base_path):]
        handler = getattr(self, f"_serve_{interface}", None)
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such interface"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        try:
            data = self._open(interface, body, headers)
            result = handler(data)
            ret, msg = 0, ""
            with self._lock:
                self.received.append((interface, data, headers))
                self.arrivals.append((time.monotonic(), interface, data))
        except Invalid as exc:
            ret, msg, result = exc.ret, exc.msg, None
            with self._lock:
                self.rejected.append((interface, ret, msg))
        except Exception as exc:  # a bug in the double must show, not pass as a protocol answer
            ret, msg, result = 500, f"partner error: {exc!r}", None
            with self._lock:
                self.rejected.append((interface, ret, msg))
        out_data = encrypt(self.keys, to_json(result)) if result is not None else ""
        payload = {"Ret": ret, "Msg": msg, "Data": out_data, "Sig": response_sig(self.keys, ret, msg, out_data)}
        raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        start_response("200 OK", [("Content-Type", "application/json;charset=utf-8"),
                                  ("Content-Length", str(len(raw)))])
        return [raw]

    def _open(self, interface: str, body: bytes, headers: dict) -> dict:
        """Envelope checks (4003), signature (4001) before decrypting, token (4002), then the Data."""
        try:
            envelope = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Invalid(4003, "body is not JSON") from None
        if not isinstance(envelope, dict):
            raise Invalid(4003, "body is not a JSON object")
        for field in ENVELOPE_FIELDS:
            if not isinstance(envelope.get(field), str) or not envelope[field]:
                raise Invalid(4003, f"missing {field}")
        op, data, ts, seq, sig = (envelope[f] for f in ENVELOPE_FIELDS)
        if not re.fullmatch(r"[0-9A-Z]{9}", op) or (self.keys.operator_id and op != self.keys.operator_id):
            raise Invalid(4003, f"unknown OperatorID {op}")
        if not re.fullmatch(r"\d{14}", ts) or not re.fullmatch(r"\d{4}", seq) or seq == "0000":
            raise Invalid(4003, "TimeStamp or Seq malformed")
        if sig != request_sig(self.keys, op, data, ts, seq):  # exact, upper-case (spec §2.5)
            raise Invalid(4001, "signature error")
        if self.timestamp_window is not None:
            sent = datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=LOCAL_TZ)
            if abs((datetime.now(LOCAL_TZ) - sent).total_seconds()) > self.timestamp_window:
                raise Invalid(4003, f"TimeStamp {ts} outside the window")
        if self.reject_replays:
            with self._lock:
                if (op, ts, seq) in self._seen:
                    raise Invalid(4003, "replayed TimeStamp+Seq")
                self._seen.add((op, ts, seq))
        if interface != "query_token":
            auth = headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            with self._lock:
                expiry = self._tokens.get(token) if token else None
            if expiry is None or expiry < time.monotonic():
                raise Invalid(4002, "token missing, unknown or expired")
        if not headers.get("Content-Type", "").lower().startswith("application/json"):
            raise Invalid(4003, "Content-Type must be application/json")
        try:
            plain = decrypt(self.keys, data)
        except (ValueError, UnicodeDecodeError):
            raise Invalid(4003, "Data cannot be decrypted") from None
        try:
            obj = parse_json(plain)
        except ValueError:
            raise Invalid(4004, "Data is not JSON") from None
        if not isinstance(obj, dict):
            raise Invalid(4004, "Data is not a JSON object")
        return obj

    # ---- served interfaces (each validates its fields, raises Invalid(4004) on a bad one)

    def _serve_query_token(self, data):
        op = _str(data, "OperatorID", exact_len=9)
        secret = _str(data, "OperatorSecret")
        if self.keys.operator_id and op != self.keys.operator_id:
            return {"OperatorID": op, "SuccStat": 1, "AccessToken": "", "TokenAvailableTime": 0, "FailReason": 1}
        if secret != self.keys.operator_secret:
            return {"OperatorID": op, "SuccStat": 1, "AccessToken": "", "TokenAvailableTime": 0, "FailReason": 2}
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
        return {"OperatorID": self.operator_id, "SuccStat": 0, "AccessToken": token,
                "TokenAvailableTime": self.token_ttl, "FailReason": 0}

    def _serve_notification_stationStatus(self, data):
        info = _need(data, "ConnectorStatusInfo")
        items = info if self.status_shape == "array" else [info]
        if self.status_shape == "array" and not isinstance(info, list):
            raise Invalid(4004, "ConnectorStatusInfo must be an array")
        if self.status_shape == "object" and not isinstance(info, dict):
            raise Invalid(4004, "ConnectorStatusInfo must be an object")
        for item in items:
            if not isinstance(item, dict):
                raise Invalid(4004, "ConnectorStatusInfo item is not an object")
            _str(item, "ConnectorID", max_len=26)
            _int(item, "Status", {0, 1, 2, 3, 4, 255})
            _int(item, "ParkStatus", {0, 10, 50}, optional=True)
            _int(item, "LockStatus", {0, 10, 50}, optional=True)
        return {"Status": 0}

    def _serve_notification_start_charge_result(self, data):
        seq = _seq27(data, "StartChargeSeq")
        _int(data, "StartChargeSeqStat", {1, 2, 3, 4, 5})
        _str(data, "ConnectorID")
        _str(data, "StartTime", pattern=TIME_RE)
        _str(data, "IdentCode", optional=True)
        return {"StartChargeSeq": seq, "SuccStat": 0, "FailReason": 0}

    def _details(self, data, prefix_money=""):
        """ChargeDetails with the dialect's spelling; SumPeriod must equal their count."""
        sum_period = _int(data, "SumPeriod", set(range(33)))
        details = _need(data, "ChargeDetails")
        if not isinstance(details, list) or len(details) != sum_period:
            raise Invalid(4004, "SumPeriod does not match ChargeDetails")
        wrong = "Service" if self.dialect == "Sevice" else "Sevice"
        for d in details:
            if not isinstance(d, dict):
                raise Invalid(4004, "ChargeDetails item is not an object")
            if any(wrong in key for key in d):
                raise Invalid(4004, f"ChargeDetails spelled {wrong}*, this partner wants {self.dialect}*")
            start = _str(d, "DetailStartTime", pattern=TIME_RE)
            end = _str(d, "DetailEndTime", pattern=TIME_RE)
            if end < start:
                raise Invalid(4004, "DetailEndTime before DetailStartTime")
            _num(d, "ElecPrice", 4)
            _num(d, f"{self.dialect}Price", 4)
            _num(d, "DetailPower", 2)
            _num(d, "DetailElecMoney", 2)
            _num(d, f"Detail{self.dialect}Money", 2)
        return details

    def _serve_notification_equip_charge_status(self, data):
        seq = _seq27(data, "StartChargeSeq")
        _int(data, "StartChargeSeqStat", {1, 2, 3, 4, 5})
        _str(data, "ConnectorID")
        _int(data, "ConnectorStatus", {1, 2, 3, 4, 255})
        for field in ("CurrentA", "VoltageA", "Soc"):
            _num(data, field, 2)
        for field in ("CurrentB", "CurrentC", "VoltageB", "VoltageC"):
            _num(data, field, 2, optional=True)
        start = _str(data, "StartTime", pattern=TIME_RE)
        end = _str(data, "EndTime", pattern=TIME_RE)
        if end < start:
            raise Invalid(4004, "EndTime before StartTime")
        wrong = "Service" if self.dialect == "Sevice" else "Sevice"
        if any(wrong in key for key in data):
            raise Invalid(4004, f"spelled {wrong}*, this partner wants {self.dialect}*")
        other = "ElectMoney" if self.elec_money == "ElecMoney" else "ElecMoney"
        if other in data:
            raise Invalid(4004, f"{other} sent, this partner wants {self.elec_money}")
        _num(data, "TotalPower", 2)
        elec = _num(data, self.elec_money, 2)
        service = _num(data, f"{self.dialect}Money", 2)
        total = _num(data, "TotalMoney", 2)
        if elec + service != total:
            raise Invalid(4004, f"{self.elec_money} + {self.dialect}Money != TotalMoney")
        if "SumPeriod" in data or "ChargeDetails" in data:
            self._details(data)
        return {"StartChargeSeq": seq, "SuccStat": 0}

    def _serve_notification_stop_charge_result(self, data):
        seq = _seq27(data, "StartChargeSeq")
        _int(data, "StartChargeSeqStat", {1, 2, 3, 4, 5})
        _str(data, "ConnectorID")
        _int(data, "SuccStat", {0, 1})
        _int(data, "FailReason", set(range(100)))
        return {"StartChargeSeq": seq, "SuccStat": 0, "FailReason": 0}

    def _serve_notification_charge_order_info(self, data):
        # the standard sends the ChargeOrderInfo fields at the top level; accept a wrapper too
        order = data.get("ChargeOrderInfo", data) if isinstance(data.get("ChargeOrderInfo"), dict) else data
        seq = _seq27(order, "StartChargeSeq")
        connector = _str(order, "ConnectorID")
        start = _str(order, "StartTime", pattern=TIME_RE)
        end = _str(order, "EndTime", pattern=TIME_RE)
        if end < start:
            raise Invalid(4004, "EndTime before StartTime")
        wrong = "Service" if self.dialect == "Sevice" else "Sevice"
        if any(wrong in key for key in order):
            raise Invalid(4004, f"spelled {wrong}*, this partner wants {self.dialect}*")
        _num(order, "TotalPower", 2)
        elec = _num(order, "TotalElecMoney", 2)
        service = _num(order, f"Total{self.dialect}Money", 2)
        total = _num(order, "TotalMoney", 2)
        if elec + service != total:
            raise Invalid(4004, f"TotalElecMoney + Total{self.dialect}Money != TotalMoney")
        _int(order, "StopReason", set(range(100)))
        details = self._details(order)
        if details:
            if sum(Decimal(d["DetailElecMoney"]) for d in details) != elec:
                raise Invalid(4004, "DetailElecMoney does not add up to TotalElecMoney")
            if sum(Decimal(d[f"Detail{self.dialect}Money"]) for d in details) != service:
                raise Invalid(4004, f"Detail{self.dialect}Money does not add up to Total{self.dialect}Money")
        confirm = 1 if seq in self.disputed_orders else 0
        return {"StartChargeSeq": seq, "ConnectorID": connector, "ConfirmResult": confirm}

    def _serve_check_charge_orders(self, data):
        check_seq = _seq27(data, "CheckOrderSeq")
        start = _str(data, "StartTime", pattern=TIME_RE)
        end = _str(data, "EndTime", pattern=TIME_RE)
        count = _int(data, "OrderCount")
        total_power = _num(data, "TotalOrderPower", 2)
        total_money = _num(data, "TotalOrderMoney", 2)
        orders = _need(data, "ChargeOrders")
        if not isinstance(orders, list) or len(orders) != count:
            raise Invalid(4004, "OrderCount does not match ChargeOrders")
        power_sum, money_sum, disputes = Decimal(0), Decimal(0), []
        for item in orders:
            seq = _seq27(item, "StartChargeSeq")
            power = _num(item, "TotalPower", 2)
            money = _num(item, "TotalMoney", 2)
            power_sum += power
            money_sum += money
            planted = self.planted_disputes.get(seq)
            if planted:
                disputes.append({"StartChargeSeq": seq, **planted})
        if power_sum != total_power or money_sum != total_money:
            raise Invalid(4004, "TotalOrderPower/TotalOrderMoney do not add up")
        return {"CheckOrderSeq": check_seq, "StartTime": start, "EndTime": end,
                "TotalDisputeOrder": len(disputes),
                "TotalDisputePower": sum((d["TotalPower"] for d in disputes), Decimal("0.00")),
                "TotalDisputeMoney": sum((d["TotalMoney"] for d in disputes), Decimal("0.00")),
                "DisputeOrders": disputes}

    def _serve_query_stations_info(self, data):
        page_no = _int(data, "PageNo", optional=True) or 1
        page_size = _int(data, "PageSize", optional=True) or 10
        if page_no < 1 or not 1 <= page_size <= 100:
            raise Invalid(4004, "PageNo/PageSize out of range")
        last = _str(data, "LastQueryTime", pattern=TIME_RE, optional=True)
        stations = [s for s in self.stations if not last or s.get("_UpdatedAt", "") >= last]
        page_count = max(1, -(-len(stations) // page_size))
        page = stations[(page_no - 1) * page_size:page_no * page_size]
        return {"PageNo": page_no, "PageCount": page_count, "ItemSize": len(stations),
                "StationInfos": [{k: v for k, v in s.items() if not k.startswith("_")} for s in page]}


# --------------------------------------------------------------------------- the partner calling us

class BadResponse(AssertionError):
    """Our platform answered something a strict partner refuses (bad Sig, not JSON, wrong types)."""


_COUNTERS: dict[str, SeqCounter] = {}
_COUNTERS_LOCK = threading.Lock()


class PartnerClient:
    """The partner calling our endpoints. ``base_url`` is e.g. ``http://127.0.0.1:5000/evcs/v1.0``."""

    def __init__(self, base_url: str, keys: Keys, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.keys = keys
        self.timeout = timeout
        self.access_token: str | None = None
        self.token_available_time: int | None = None
        self.last_envelope: dict | None = None
        self.last_http_status: int | None = None
        self.last_response: dict | None = None
        # one Seq counter per OperatorID in this process: several clients of one partner never repeat
        # an OperatorID+TimeStamp+Seq (a real partner numbers its messages in one place too)
        with _COUNTERS_LOCK:
            self._seq = _COUNTERS.setdefault(keys.operator_id, SeqCounter())

    def envelope(self, data, *, timestamp: str | None = None, seq: str | None = None,
                 operator_id: str | None = None) -> dict:
        plain = data if isinstance(data, str) else to_json(data)
        op = operator_id or self.keys.operator_id
        ts = timestamp or local_timestamp()
        sq = seq or self._seq.next(ts)
        enc = encrypt(self.keys, plain)
        return {"OperatorID": op, "Data": enc, "TimeStamp": ts, "Seq": sq,
                "Sig": request_sig(self.keys, op, enc, ts, sq)}

    def token(self) -> str:
        ret, msg, data = self.call("query_token", {"OperatorID": self.keys.operator_id,
                                                   "OperatorSecret": self.keys.operator_secret})
        if ret != 0 or not data or data.get("SuccStat") != 0:
            raise BadResponse(f"query_token failed: Ret={ret} Msg={msg!r} Data={data!r}")
        if not isinstance(data.get("AccessToken"), str) or not isinstance(data.get("TokenAvailableTime"), int):
            raise BadResponse(f"query_token answer malformed: {data!r}")
        self.access_token = data["AccessToken"]
        self.token_available_time = data["TokenAvailableTime"]
        return self.access_token

    def call(self, interface: str, data=None, *, token: str | None = None, bad_sig: bool = False,
             timestamp: str | None = None, seq: str | None = None, replay: bool = False,
             envelope: dict | None = None, tamper_data=None, raw_body: bytes | None = None,
             omit: tuple = (), operator_id: str | None = None, auth: bool = True):
        """POST one request; returns ``(Ret, Msg, decrypted Data or None)``.

        ``token``: Bearer token to send instead of ours; ``bad_sig``: flip the Sig; ``timestamp`` /
        ``seq``: set them (stale timestamp, repeated Seq); ``replay``: resend the previous envelope
        byte for byte; ``envelope``: send this envelope; ``tamper_data(data_b64) -> str``: change
        ``Data`` after signing; ``omit``: drop envelope fields; ``raw_body``: send these bytes;
        ``auth=False``: no Authorization header.
        """
        if replay:
            env = dict(self.last_envelope)
        elif envelope is not None:
            env = dict(envelope)
        else:
            env = self.envelope(data if data is not None else {}, timestamp=timestamp, seq=seq,
                                operator_id=operator_id)
            if bad_sig:
                env["Sig"] = ("0" if env["Sig"][0] != "0" else "1") + env["Sig"][1:]
            if tamper_data is not None:
                env["Data"] = tamper_data(env["Data"])
            for field in omit:
                env.pop(field, None)
        self.last_envelope = env
        headers = {"Content-Type": "application/json;charset=utf-8"}
        bearer = token if token is not None else self.access_token
        if auth and interface != "query_token" and bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        body = raw_body if raw_body is not None else json.dumps(env, ensure_ascii=False).encode("utf-8")
        status, text = self._post(f"{self.base_url}/{interface}", body, headers)
        self.last_http_status = status
        if status != 200:
            raise BadResponse(f"{interface}: HTTP {status}: {text[:300]!r}")
        return self.open_response(text)

    def open_response(self, text: str):
        try:
            resp = json.loads(text)
        except ValueError:
            raise BadResponse(f"response is not JSON: {text[:300]!r}") from None
        self.last_response = resp
        for field, kind in (("Ret", int), ("Msg", str), ("Data", str), ("Sig", str)):
            if not isinstance(resp.get(field), kind) or isinstance(resp.get(field), bool):
                raise BadResponse(f"response field {field} missing or not {kind.__name__}: {resp!r}")
        if resp["Sig"] != response_sig(self.keys, resp["Ret"], resp["Msg"], resp["Data"]):
            raise BadResponse(f"response Sig does not verify: {resp!r}")
        data = parse_json(decrypt(self.keys, resp["Data"])) if resp["Data"] else None
        return resp["Ret"], resp["Msg"], data

    def _post(self, url: str, body: bytes, headers: dict):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.status, resp.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace")


"""T/CEC 102.4 codec: AES-128-CBC/PKCS#7 + Base64 data, HMAC-MD5 signatures, envelopes.

One codec for both directions (docs/tcec-protocol.md §2.3–2.5):

- request  ``{OperatorID, Data, TimeStamp, Seq, Sig}``, Sig = HMAC-MD5(SigSecret, OperatorID+Data+TimeStamp+Seq);
- response ``{Ret, Msg, Data, Sig}``, Sig = HMAC-MD5(SigSecret, str(Ret)+Msg+Data);
- Data = Base64(AES-128-CBC(DataSecret, IV=DataSecretIV, PKCS#7 over the UTF-8 bytes of the JSON));
- key strings are used as their UTF-8 bytes (no hex/Base64 decoding).

Which key set goes in which direction (the Partner row keeps both and this module fixes the rule):

- ``partner_keys_ours(partner)`` — **they call us.** The secrets we issued to the partner
  (``our_operator_secret``, ``our_data_secret``, ``our_data_secret_iv``, ``our_sig_secret``) open their
  requests to our endpoints and sign/encrypt our responses to them. ``operator_id`` is the caller's
  OperatorID as it appears in their envelopes: ``partner.partner_operator_code``.
- ``partner_keys_theirs(partner)`` — **we call them.** The secrets the partner issued to us
  (``operator_secret``, ``data_secret``, ``data_secret_iv``, ``sig_secret``) build our requests (pushes,
  query_token, check_charge_orders, query_stations_info) and open their responses. ``operator_id`` is our
  OperatorID as they know us: ``partner.our_operator_code``.

So ``Keys.operator_id`` is always the OperatorID of the *caller* of the request the keys are used for,
and ``Keys.operator_secret`` is the secret that caller sends in ``query_token``.

Signatures are compared in constant time; a lower-case hex Sig from a peer is accepted (some
implementations compare case-insensitively); we always send upper case.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from decimal import Decimal
from typing import NamedTuple

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad

RET_BUSY = -1
RET_OK = 0
RET_SIG = 4001
RET_TOKEN = 4002
RET_POST_PARAMS = 4003
RET_BUSINESS_PARAMS = 4004
RET_SYSTEM = 500

REQUEST_FIELDS = ("OperatorID", "Data", "TimeStamp", "Seq", "Sig")


class TcecError(Exception):
    """A T/CEC failure carrying the ``Ret`` code to answer (or that the peer answered)."""

    def __init__(self, ret: int, msg: str = ""):
        self.ret = int(ret)
        self.msg = msg or ""
        super().__init__(f"T/CEC Ret {self.ret}: {self.msg}")


class Keys(NamedTuple):
    operator_id: str
    operator_secret: str
    data_secret: str
    data_secret_iv: str
    sig_secret: str


def _cipher(keys: Keys):
    return AES.new(keys.data_secret.encode("utf-8"), AES.MODE_CBC, iv=keys.data_secret_iv.encode("utf-8"))


def encrypt(keys: Keys, plaintext: str) -> str:
    raw = pad(plaintext.encode("utf-8"), AES.block_size, style="pkcs7")
    return base64.b64encode(_cipher(keys).encrypt(raw)).decode("ascii")


def decrypt(keys: Keys, data_b64: str) -> str:
    """Plaintext of ``data_b64``; raises ``ValueError`` on bad Base64, length, padding or UTF-8."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("Data is not valid Base64") from exc
    if not raw or len(raw) % AES.block_size:
        raise ValueError("Data length is not a multiple of the AES block size")
    return unpad(_cipher(keys).decrypt(raw), AES.block_size, style="pkcs7").decode("utf-8")


def sign(keys: Keys, *parts) -> str:
    msg = "".join(str(p) for p in parts).encode("utf-8")
    return hmac.new(keys.sig_secret.encode("utf-8"), msg, hashlib.md5).hexdigest().upper()


def _sig_ok(keys: Keys, received, *parts) -> bool:
    if not isinstance(received, str):
        return False
    return hmac.compare_digest(sign(keys, *parts).encode("ascii"), received.upper().encode("utf-8", "replace"))


_NUM = "\ue000"  # private-use marker around a Decimal while json.dumps runs
_NUM_RE = re.compile('"' + _NUM + r'(-?[0-9]+(?:\.[0-9]+)?)' + _NUM + '"')


def _numbers_marked(value):
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a T/CEC number must be finite")
        return f"{_NUM}{value:f}{_NUM}"
    if isinstance(value, str):
        return value.replace(_NUM, "")
    if isinstance(value, dict):
        return {k: _numbers_marked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_marked(v) for v in value]
    return value


def dumps(payload) -> str:
    """Compact UTF-8 JSON (Chinese kept as is). A ``Decimal`` is written as a JSON number with exactly
    its own decimal places (``Decimal("0.8000")`` → ``0.8000``), so quantize before building a payload."""
    text = json.dumps(_numbers_marked(payload), ensure_ascii=False, separators=(",", ":"))
    return _NUM_RE.sub(r"\1", text)


def loads(text: str):
    """JSON with non-integer numbers as ``Decimal`` (money and energy never pass through float)."""
    return json.loads(text, parse_float=Decimal)


def build_request(keys: Keys, payload: dict, timestamp: str, seq: str) -> dict:
    data = encrypt(keys, dumps(payload))
    return {
        "OperatorID": keys.operator_id,
        "Data": data,
        "TimeStamp": timestamp,
        "Seq": seq,
        "Sig": sign(keys, keys.operator_id, data, timestamp, seq),
    }


def check_request_fields(envelope) -> None:
    """4003 unless every envelope field is present as a non-empty string."""
    if not isinstance(envelope, dict):
        raise TcecError(RET_POST_PARAMS, "request body is not a JSON object")
    for field in REQUEST_FIELDS:
        value = envelope.get(field)
        if not isinstance(value, str) or not value:
            raise TcecError(RET_POST_PARAMS, f"{field} missing")


def open_request(keys: Keys, envelope: dict) -> dict:
    """Business payload of a request: 4003 (field missing), then Sig (4001) BEFORE decrypting,
    then decrypt + JSON object (4004)."""
    verify_request(keys, envelope)
    return _payload(keys, envelope["Data"])


def verify_request(keys: Keys, envelope: dict) -> None:
    """4003 when an envelope field is missing, 4001 unless Sig verifies; decrypts nothing."""
    check_request_fields(envelope)
    if not _sig_ok(keys, envelope["Sig"], envelope["OperatorID"], envelope["Data"],
                   envelope["TimeStamp"], envelope["Seq"]):
        raise TcecError(RET_SIG, "signature error")


def _payload(keys: Keys, data: str) -> dict:
    try:
        payload = loads(decrypt(keys, data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TcecError(RET_BUSINESS_PARAMS, "Data cannot be decrypted or is not JSON") from exc
    if not isinstance(payload, dict):
        raise TcecError(RET_BUSINESS_PARAMS, "Data is not a JSON object")
    return payload


def build_response(keys: Keys, ret: int, msg: str, payload: dict | None) -> dict:
    msg = msg or ""
    data = "" if payload is None else encrypt(keys, dumps(payload))
    return {"Ret": int(ret), "Msg": msg, "Data": data, "Sig": sign(keys, int(ret), msg, data)}


def open_response(keys: Keys, envelope: dict) -> dict:
    """Payload of a peer's response; 4001 on a bad Sig; ``TcecError(Ret, Msg)`` when Ret != 0."""
    if not isinstance(envelope, dict) or "Ret" not in envelope:
        raise TcecError(RET_SYSTEM, "response is not a T/CEC envelope")
    try:
        ret = int(envelope["Ret"])
    except (TypeError, ValueError) as exc:
        raise TcecError(RET_SYSTEM, "response Ret is not an integer") from exc
    msg = envelope.get("Msg") or ""
    data = envelope.get("Data") or ""
    if not _sig_ok(keys, envelope.get("Sig"), ret, msg, data):
        raise TcecError(RET_SIG, "response signature error")
    if ret != RET_OK:
        raise TcecError(ret, msg)
    return _payload(keys, data) if data else {}


def partner_keys_theirs(partner) -> Keys:
    """Keys for requests WE send to the partner (and their responses)."""
    return Keys(partner.our_operator_code, partner.operator_secret, partner.data_secret,
                partner.data_secret_iv, partner.sig_secret)


def partner_keys_ours(partner) -> Keys:
    """Keys for requests the partner sends to US (and our responses)."""
    return Keys(partner.partner_operator_code, partner.our_operator_secret, partner.our_data_secret,
                partner.our_data_secret_iv, partner.our_sig_secret)

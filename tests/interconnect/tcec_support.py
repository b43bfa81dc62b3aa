"""Fixtures for our T/CEC endpoint tests: two partner rows with their own keys (one per demo operator)
and a caller that signs requests with the keys we issued to a partner (what the partner holds)."""
from __future__ import annotations

import itertools
import json
import random

import pytest
from sqlalchemy import select

from app.extensions import db
from app.interconnect import codec
from app.models import Channel, Operator, Partner
from app.security.scope import platform_scope
from app.services import clock

SEQ = itertools.count(random.randint(1, 5000))
CODES = ("H1TSTA001", "H1TSTB001")


def next_seq() -> str:
    return f"{next(SEQ) % 9999 + 1:04d}"


def timestamp(now=None) -> str:
    return clock.local_now(now).strftime("%Y%m%d%H%M%S")


def _partner(operator, code, n):
    partner = db.session.scalar(select(Partner).where(Partner.operator_id == operator.id,
                                                      Partner.partner_operator_code == code))
    if partner is None:
        channel = db.session.scalar(select(Channel).where(Channel.operator_id == operator.id,
                                                          Channel.channel_type == "interconnect").order_by(Channel.id))
        partner = Partner(
            operator_id=operator.id, name=f"测试平台{n}", partner_type="platform", partner_operator_code=code,
            operator_secret=f"theirSecret{n:05d}", data_secret=f"theirDataKey{n:04d}",
            data_secret_iv=f"theirDataIV0{n:04d}", sig_secret=f"theirSig{n:08d}", base_url="http://127.0.0.1:9/",
            our_operator_code=operator.code[:9].upper().ljust(9, "0") if operator.code else "OURCODE01",
            our_operator_secret=f"ourSecret{n:07d}", our_data_secret=f"ourDataKey00{n:04d}",
            our_data_secret_iv=f"ourDataIV000{n:04d}", our_sig_secret=f"ourSig{n:010d}",
            channel_id=channel.id if channel else None)
        db.session.add(partner)
        db.session.commit()
    return partner


@pytest.fixture(scope="module")
def tcec_partners(app):
    """{'a': partner of operator 1, 'b': partner of operator 2} as plain dicts (ids, keys, operator)."""
    with app.app_context(), platform_scope("test"):
        ops = db.session.scalars(select(Operator).order_by(Operator.id)).all()[:2]
        out = {}
        for name, op, code, n in (("a", ops[0], CODES[0], 1), ("b", ops[1], CODES[1], 2)):
            p = _partner(op, code, n)
            p.ip_allowlist, p.enabled = None, True
            db.session.commit()
            out[name] = {"id": p.id, "operator_id": op.id, "keys": codec.partner_keys_ours(p),
                         "channel_id": p.channel_id, "our_code": p.our_operator_code}
        return out


class Caller:
    """A partner calling us: builds signed envelopes with ``keys`` and posts them with ``post``
    (``post(path, body_bytes, headers, ip) -> (http status, json)``)."""

    def __init__(self, post, keys, base="/evcs/v1.0/"):
        self.post, self.keys, self.base, self.token = post, keys, base, None

    def envelope(self, payload, ts=None, seq=None):
        return codec.build_request(self.keys, payload, ts or timestamp(), seq or next_seq())

    def raw(self, interface, envelope, token=None, ip="127.0.0.1", body=None):
        headers = {"Content-Type": "application/json;charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = body if body is not None else json.dumps(envelope).encode()
        status, answer = self.post(self.base + interface, data, headers, ip)
        assert status == 200, (status, answer)
        return answer

    def call(self, interface, payload, token="auto", ip="127.0.0.1", **kw):
        """(Ret, Msg, decrypted Data or None); the answer's Sig is checked whenever it is signed."""
        if token == "auto":
            token = self.login() if interface != "query_token" else None
        answer = self.raw(interface, self.envelope(payload, **kw), token=token, ip=ip)
        return self.open(answer)

    def open(self, answer):
        assert answer["Sig"] == codec.sign(self.keys, answer["Ret"], answer["Msg"], answer["Data"])
        data = json.loads(codec.decrypt(self.keys, answer["Data"]), parse_float=str) if answer["Data"] else None
        return answer["Ret"], answer["Msg"], data

    def login(self):
        if self.token is None:
            ret, _, data = self.call("query_token", {"OperatorID": self.keys.operator_id,
                                                     "OperatorSecret": self.keys.operator_secret})
            assert ret == 0 and data["SuccStat"] == 0, data
            self.token = data["AccessToken"]
        return self.token


def flask_post(client):
    def post(path, body, headers, ip):
        rv = client.post(path, data=body, headers=headers, environ_base={"REMOTE_ADDR": ip})
        return rv.status_code, rv.get_json(silent=True) if rv.status_code == 200 else rv.get_data(as_text=True)

    return post

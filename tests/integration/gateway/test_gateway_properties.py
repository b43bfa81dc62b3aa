"""Property: random bytes and mutated valid frames never kill a logged-in session (server side).
After every example the same connection still gets its heartbeat acknowledged."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.gateway.registry import Registry
from app.gateway.ykc import (
    BillingModelVerify,
    Heartbeat,
    RealtimeData,
    RemoteStopReply,
    TimeSyncReply,
    encode_frame,
    utcnow,
)
from tests.integration.gateway.ykc_client import PileClient

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def session(gateway, piles, redis):
    code = piles()
    pile = PileClient(gateway.port, code)
    assert pile.login().result == 0
    owner = Registry(redis).owner(code)
    yield pile, code, owner
    pile.close()


def valid_frames(code: str) -> list[bytes]:
    return [
        encode_frame(Heartbeat(pile_code=code, gun="01"), 7),
        encode_frame(BillingModelVerify(pile_code=code, billing_model_id="0000"), 8),
        encode_frame(RealtimeData(transaction_serial="1" * 32, pile_code=code, gun="02", status=2,
                                  energy=Decimal("1.0000")), 9),
        encode_frame(TimeSyncReply(pile_code=code, current_time=utcnow()), 10),
        encode_frame(RemoteStopReply(pile_code=code, gun="01", result=1), 11),
    ]


def still_alive(pile: PileClient, code: str, n: int) -> None:
    seq = 0x8000 + n
    pile.send(Heartbeat(pile_code=code, gun="01"), seq=seq)
    header, _ = pile.expect(0x04, timeout=5)
    while header.seq != seq:                       # acks of heartbeats hidden in the mutated input
        header, _ = pile.expect(0x04, timeout=5)


counter = iter(range(1, 10**6))


@SETTINGS
@given(junk=st.binary(min_size=1, max_size=400))
def test_random_bytes_never_kill_the_session(session, junk):
    pile, code, _ = session
    pile.send_bytes(junk)
    still_alive(pile, code, next(counter))


@SETTINGS
@given(data=st.data())
def test_mutated_frames_never_kill_the_session(session, data):
    pile, code, _ = session
    frame = bytearray(data.draw(st.sampled_from(valid_frames(code))))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length"]))
        pos = data.draw(st.integers(0, len(frame) - 1))
        if kind == "flip":
            frame[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            frame.insert(pos, data.draw(st.integers(0, 255)))
        elif kind == "delete" and len(frame) > 1:
            del frame[pos]
        elif kind == "truncate":
            frame = frame[:pos + 1]
        elif kind == "length" and len(frame) > 1:
            frame[1] = data.draw(st.integers(0, 255))
    pile.send_bytes(bytes(frame))
    still_alive(pile, code, next(counter))


def test_the_same_connection_survived(session, redis):
    pile, code, owner = session
    still_alive(pile, code, next(counter))
    assert Registry(redis).owner(code) == owner             # never reconnected, never replaced

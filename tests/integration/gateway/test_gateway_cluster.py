"""Two gateway nodes; commands from a third process reach each pile on the node that holds it, and
a pile that moves to another node is not marked offline by the node it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from sqlalchemy import select

from app.gateway.registry import Registry
from app.gateway.ykc import RealtimeData, TimeSyncReply, encode_reply
from app.models import Pile
from app.services import pile_commands
from tests.integration.gateway.conftest import ROOT, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

# a plain (non-gevent) process, like an RQ worker: sends two commands and prints the replies
WORKER = """
import json, sys
from app import create_app
from app.services import pile_commands
app = create_app("test")
with app.app_context():
    synced = pile_commands.time_sync(sys.argv[1], timeout=10)
    data = pile_commands.read_realtime(sys.argv[2] + "02", timeout=10)
print(json.dumps({"time_sync_pile": synced.pile_code, "realtime_pile": data.pile_code, "gun": data.gun,
                  "soc": data.soc}))
"""


def worker_env(app):
    env = dict(os.environ)
    env.update(CPMS_CONFIG="test", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], INSTANCE_DIR=app.config["INSTANCE_DIR"])
    return env


def test_commands_from_a_third_process_reach_the_right_node(app, gateway, fast_gateway, piles, redis):
    code_a, code_b = piles(), piles()
    registry = Registry(redis)
    with PileClient(gateway.port, code_a) as pile_a, PileClient(fast_gateway.port, code_b) as pile_b:
        assert pile_a.login().result == 0
        pile_a.expect(0x56)                                # the time sync every login gets
        assert pile_b.login().result == 0
        pile_b.start_heartbeats(0.1)
        assert registry.owner(code_a)[0] == "gw-test-a" and registry.owner(code_b)[0] == "gw-test-b"

        worker = subprocess.Popen([sys.executable, "-c", WORKER, code_a, code_b], cwd=ROOT, env=worker_env(app),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            header, sync = pile_a.expect(0x56, timeout=20)
            pile_a.send_bytes(encode_reply(TimeSyncReply(pile_code=code_a, current_time=sync.current_time), header))
            header, _ = pile_b.expect(0x12, timeout=20, gun="02")
            pile_b.send_bytes(encode_reply(RealtimeData(transaction_serial="0" * 32, pile_code=code_b, gun="02",
                                                        status=2, soc=42), header))
            out, err = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {
            "time_sync_pile": code_a, "realtime_pile": code_b, "gun": "02", "soc": 42}


def test_a_pile_that_moves_to_another_node_stays_online(app, gateway, fast_gateway, piles, redis):
    code = piles()
    registry = Registry(redis)
    old = PileClient(gateway.port, code)
    try:
        assert old.login().result == 0
        assert registry.owner(code)[0] == "gw-test-a"
        with PileClient(fast_gateway.port, code) as new:           # reconnects through another node
            assert new.login().result == 0
            new.start_heartbeats(0.1)
            assert registry.owner(code)[0] == "gw-test-b"
            old.close()                                            # the old node notices the drop
            time.sleep(0.5)
            assert registry.owner(code)[0] == "gw-test-b"
            assert fetch(app, select(Pile.online).where(Pile.code == code))[0][0] is True
            with app.app_context():                                 # and commands follow the pile
                assert pile_commands.bus().node_of(code) == "gw-test-b"
            new.stop_heartbeats()
        wait_until(lambda: registry.owner(code) is None, timeout=5)
    finally:
        old.close()

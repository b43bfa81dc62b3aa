"""Command bus: any process asks the gateway node holding a pile to send it a frame, and gets the
pile's reply back. Plain redis-py on the calling side (works in RQ workers, tests, web workers).

Flow::

    caller                              Redis                             gateway node
    owner = GET pile:{code}:owner  ->  "node|conn"
    RPUSH node:{node}:cmd {request} ->  list        ->  BLPOP (CommandListener) -> session sends frame
    BLPOP reply:{id} (timeout)      <-  list        <-  LPUSH {frame hex} when the matching reply frame
                                                        arrives (type + pile + gun/serial), or an error

A request carries the encoded frame body, the reply frame types it waits for and the fields the
reply must match (e.g. ``{"gun": "01"}``). The node answers ``{"ok": true, "frame": hex}`` or
``{"ok": false, "error": "offline" | "timeout" | "send_failed" | ...}``; the caller decodes the
frame into its typed message. Requests whose deadline passed while queued are dropped.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.gateway.registry import Registry, node_queue_key, reply_key
from app.gateway.ykc import Message, decode_frame

log = logging.getLogger(__name__)

REPLY_TTL = 60          # seconds a reply waits in Redis for its caller
GRACE = 2.0             # the caller waits this much longer than the node, to get the node's verdict


class CommandError(RuntimeError):
    """A command could not be carried out."""

    def __init__(self, message: str, pile_code: str | None = None):
        super().__init__(message)
        self.pile_code = pile_code


class PileOffline(CommandError):
    """No gateway node holds the pile (not connected, or its node is gone)."""


class CommandTimeout(CommandError):
    """The pile did not answer in time."""


@dataclass
class Request:
    """One command as it travels to the node."""

    pile: str
    op: str = "send"                     # "send" a frame, or a node-side operation ("push_price")
    frame_type: int | None = None
    body: str = ""                       # hex of the encoded frame body
    expect: list[int] = field(default_factory=list)
    match: dict[str, Any] = field(default_factory=dict)
    timeout: float = 10.0
    deadline: float = 0.0                # epoch seconds
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str | None = None          # None: fire and forget
    received: float = 0.0                # node side: monotonic time of receipt

    def dumps(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "received"}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> Request:
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "received"}
        return cls(**known)

    @property
    def expired(self) -> bool:
        return bool(self.deadline) and time.time() > self.deadline


class CommandBus:
    """The calling side. ``redis`` is a plain (synchronous) redis-py client."""

    def __init__(self, redis):
        self.redis = redis
        self.registry = Registry(redis)

    def node_of(self, pile_code: str) -> str:
        owner = self.registry.owner(pile_code)
        if owner is None:
            raise PileOffline(f"pile {pile_code} is offline", pile_code)
        node = owner[0]
        if not self.registry.node_alive(node):
            raise PileOffline(f"pile {pile_code} was held by gateway {node}, which is gone", pile_code)
        return node

    def call(self, pile_code: str, message: Message, expect: tuple[int, ...] | list[int] = (),
             match: dict | None = None, timeout: float = 10.0):
        """Send ``message`` to the pile; wait for a reply frame of a type in ``expect`` matching
        ``match``. Returns ``(header, message)``; with no ``expect`` returns None once sent."""
        node = self.node_of(pile_code)
        req = Request(pile=pile_code, frame_type=message.frame_type, body=message.encode().hex(),
                      expect=list(expect), match=dict(match or {}), timeout=timeout,
                      deadline=time.time() + timeout)
        req.reply_to = reply_key(req.id)
        self.redis.rpush(node_queue_key(node), req.dumps())
        answer = self._wait(req, timeout + GRACE)
        if not answer.get("ok"):
            self._raise(pile_code, answer, message)
        if not answer.get("frame"):
            return None
        return decode_frame(bytes.fromhex(answer["frame"]), strict=False)

    def post(self, pile_code: str, op: str, **args) -> bool:
        """Fire-and-forget node operation; False when the pile is offline."""
        try:
            node = self.node_of(pile_code)
        except PileOffline:
            return False
        req = Request(pile=pile_code, op=op, args=args, deadline=time.time() + REPLY_TTL)
        self.redis.rpush(node_queue_key(node), req.dumps())
        return True

    def _wait(self, req: Request, seconds: float) -> dict:
        item = self.redis.blpop([req.reply_to], timeout=max(seconds, 0.01))
        if item is None:
            raise CommandTimeout(f"pile {req.pile} did not answer within {req.timeout:g} s", req.pile)
        return json.loads(item[1])

    @staticmethod
    def _raise(pile_code: str, answer: dict, message: Message):
        error = answer.get("error", "error")
        name = type(message).__name__
        if error == "offline":
            raise PileOffline(f"pile {pile_code} is offline", pile_code)
        if error == "timeout":
            raise CommandTimeout(f"pile {pile_code} did not answer {name} in time", pile_code)
        raise CommandError(f"{name} to pile {pile_code} failed: {answer.get('detail') or error}", pile_code)


def send_reply(redis, req: Request, *, frame: bytes | None = None, error: str | None = None,
               detail: str | None = None) -> None:
    """Node side: answer a request (no-op for fire-and-forget requests)."""
    if not req.reply_to:
        return
    answer = {"ok": error is None}
    if frame is not None:
        answer["frame"] = frame.hex()
    if error is not None:
        answer["error"] = error
        if detail:
            answer["detail"] = detail
    pipe = redis.pipeline(transaction=False)
    pipe.lpush(req.reply_to, json.dumps(answer))
    pipe.expire(req.reply_to, REPLY_TTL)
    pipe.execute()


class CommandListener:
    """Node side: pops requests from the node's queue and hands them to ``handler``.

    ``run`` blocks (BLPOP); the gateway runs it in its own greenlet.
    """

    def __init__(self, redis, node: str, handler, poll: float = 1.0):
        self.redis = redis
        self.queue = node_queue_key(node)
        self.handler = handler
        self.poll = poll
        self.running = True

    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        while self.running:
            try:
                item = self.redis.blpop([self.queue], timeout=self.poll)
            except Exception:
                log.exception("command queue %s unreadable; retrying", self.queue)
                time.sleep(self.poll)
                continue
            if item is None:
                continue
            try:
                req = Request.loads(item[1])
            except (ValueError, TypeError):
                log.warning("dropped a malformed command: %r", item[1][:200])
                continue
            req.received = time.monotonic()
            if req.expired:
                log.info("dropped command %s to %s: deadline passed while queued", req.id, req.pile)
                continue
            try:
                self.handler(req)
            except Exception as exc:
                log.exception("command %s to %s failed", req.id, req.pile)
                send_reply(self.redis, req, error="internal", detail=str(exc))

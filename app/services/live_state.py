"""Live pile state for the web and the workers: what the gateway wrote to Redis, read back.

The gateway (``app.gateway.state_writer``) writes one Redis hash per pile and per gun (keys in
:mod:`app.gateway.registry`, which services may import: key layout and node registry only). This
module only reads them; it never imports the gateway's server, session or batching modules.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

from app.gateway.registry import Registry, gun_key, pile_key
from app.models import Pile


def to_jsonable(value):
    """A decoded frame (dataclass) as JSON-safe data: Decimal -> str, datetime -> ISO, bytes -> hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value




def _decode_hash(raw: dict) -> dict:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def live_pile(redis, code: str) -> dict:
    """Live state of a pile: its Redis hash plus ``online`` and ``node`` from the registry."""
    registry = Registry(redis)
    state = _decode_hash(redis.hgetall(pile_key(code)))
    owner = registry.owner(code)
    state["online"] = owner is not None and registry.node_alive(owner[0])
    state["node"] = owner[0] if owner else ""
    return state


def live_guns(redis, gun_codes: list[str]) -> dict[str, dict]:
    """Live state hash of each gun (empty dict when the gateway never reported it)."""
    if not gun_codes:
        return {}
    pipe = redis.pipeline(transaction=False)
    for code in gun_codes:
        pipe.hgetall(gun_key(code))
    return {code: _decode_hash(raw) for code, raw in zip(gun_codes, pipe.execute(), strict=True)}


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def panel_state(redis, pile: Pile) -> dict:
    """What the admin shows for a pile: online state, last heartbeat (the newer of Redis and the
    database), login details and each connector's live hash (status falls back to the database)."""
    live = live_pile(redis, pile.code)
    heartbeats = [t for t in (_parse_time(live.get("last_heartbeat")), pile.last_heartbeat_at) if t]
    state = {
        "online": bool(live["online"]), "node": live["node"],
        "last_heartbeat": max(heartbeats) if heartbeats else None,
        "login_at": _parse_time(live.get("login_at")) or pile.last_login_at,
        "offline_at": _parse_time(live.get("offline_at")) or pile.last_offline_at,
        "offline_reason": live.get("offline_reason", ""),
        "firmware": live.get("firmware") or pile.firmware or "",
        "protocol_version": live.get("protocol_version") or pile.protocol_version or "",
        "iccid": live.get("iccid") or pile.iccid or "",
        "billing_model": live.get("billing_model") or (f"{pile.billing_model_id:04d}"
                                                       if pile.billing_model_id is not None else ""),
    }
    connectors = sorted(pile.connectors, key=lambda c: c.gun_no)
    guns = live_guns(redis, [c.code for c in connectors])
    state["guns"] = [{"id": c.id, "gun_no": c.gun_no, "code": c.code, "name": c.name,
                      "status": (guns[c.code].get("status") if state["online"] else None) or c.status,
                      "updated_at": _parse_time(guns[c.code].get("updated_at")), "live": guns[c.code]}
                     for c in connectors]
    return state

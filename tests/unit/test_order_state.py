"""The order state machine: one table of allowed moves, one function that assigns the status.

- the table covers every order status and knows the lifecycle of DESIGN.md;
- an illegal move raises IllegalTransition and leaves the order untouched (no event);
- a scan of ``app/`` finds no status assignment on an order outside ``order_state.transition``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.models import ChargeOrder
from app.models.order import ORDER_EVENT, ORDER_STATUS
from app.services import order_state
from app.services.order_state import TRANSITIONS, IllegalTransition

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
OWNER = ("app/services/order_state.py", "transition")

# ``<name>.status = ...`` on rows that are not charging orders, by variable name (a new name needs a
# reason here; any other name — ``order``, ``o``, ``row``, ... — fails the scan)
NOT_AN_ORDER = {
    "gun", "connector",          # Connector (gateway_state, server)
    "occ",                       # OccupancyOrder (occupancy)
    "bill",                      # PileBill (charging)
    "p", "payment",              # Payment (settlement)
    "item",                      # FaultReport / Feedback (masterdata)
    "invoice",                   # Invoice (invoices)
    "report", "feedback",        # FaultReport / Feedback (member_requests)
    "log", "row",                # PushLog (interconnect client and pushes)
    "refund",                    # Refund (payments)
}


def test_the_table_covers_every_status_and_the_lifecycle():
    statuses = {code for code, _ in ORDER_STATUS}
    assert set(TRANSITIONS) == statuses
    assert all(targets <= statuses for targets in TRANSITIONS.values())
    for a, b in [("pending", "starting"), ("starting", "charging"), ("charging", "stopping"),
                 ("stopping", "finished"), ("finished", "settled"), ("starting", "failed"),
                 ("stopping", "abnormal"), ("abnormal", "finished"), ("abnormal", "settled")]:
        assert order_state.allowed(a, b), (a, b)
    assert TRANSITIONS["settled"] == frozenset()          # money has moved: final
    for a, b in [("settled", "abnormal"), ("finished", "charging"), ("failed", "charging"),
                 ("stopping", "charging"), ("charging", "starting"), ("settled", "finished")]:
        assert not order_state.allowed(a, b), (a, b)


def test_every_event_written_by_the_services_has_a_label():
    labels = {code for code, _ in ORDER_EVENT}
    for name in ("created", "start_sent", "start_failed", "started", "stop_requested", "stopped",
                 "bill_received", "priced", "marked_abnormal", "manual_settle", "reviewed", "settled", "refund"):
        assert name in labels, name


@pytest.mark.parametrize("status,target", [("settled", "abnormal"), ("finished", "charging"),
                                           ("failed", "finished"), ("charging", "nonsense")])
def test_an_illegal_move_raises_and_changes_nothing(status, target):
    order = ChargeOrder(order_no="2401010000001", status=status, operator_id=1)
    with pytest.raises(IllegalTransition) as info:
        order_state.transition(order, target, "note")
    assert (info.value.from_status, info.value.to_status) == (status, target)
    assert isinstance(info.value, ValueError) and "2401010000001" in str(info.value)
    assert order.status == status and list(order.events) == []


def _status_writes(path: Path):
    """(line, target text, enclosing function) of every write of a ``status`` attribute in ``path``:
    ``x.status = / += / : T =``, tuple targets, ``setattr(x, "status", ...)``, and ``.values(status=...)``
    / ``.update({...status...})`` on a statement that names ChargeOrder."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, func):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for t in (target.elts if isinstance(target, ast.Tuple | ast.List) else [target]):
                if isinstance(t, ast.Attribute) and t.attr == "status":
                    found.append((node.lineno, ast.unparse(t.value), func))
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name == "setattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value == "status":
                found.append((node.lineno, ast.unparse(node.args[0]), func))
            text = ast.unparse(node)
            if name in ("values", "update") and "ChargeOrder" in text and "status" in text:
                found.append((node.lineno, text[:80], func))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, None)
    return found


def test_only_the_transition_function_assigns_an_order_status():
    offenders, owner_writes = [], 0
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, target, func in _status_writes(path):
            if (rel, func) == OWNER and target == "order":
                owner_writes += 1
            elif target not in NOT_AN_ORDER:
                offenders.append(f"{rel}:{line} {target}.status assigned in {func}()")
    assert owner_writes == 1, "order_state.transition must be the one place that assigns order.status"
    assert not offenders, "order status changes must go through order_state.transition:\n" + "\n".join(offenders)


def test_the_scan_catches_the_forms_it_forbids(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def a(order):\n    order.status = 'finished'\n"
        "def b(o):\n    o.status, o.x = 'settled', 1\n"
        "def c(row):\n    setattr(row, 'status', 'abnormal')\n"
        "def d(s):\n    s.execute(update(ChargeOrder).values(status='failed'))\n")
    assert [(t, f) for _, t, f in _status_writes(sample)] == [
        ("order", "a"), ("o", "b"), ("row", "c"), ("update(ChargeOrder).values(status='failed')", "d")]

"""Imports run gateway -> services, never back (issue 9 §3).

The web, the services, the REST API and the jobs read live pile state through
``app.services.live_state`` and talk to piles through the command bus. They may import these
parts of ``app.gateway`` (pure data or Redis contracts shared with the gateway):

- ``app.gateway.ykc`` (the codec: frame dataclasses, codes, time helpers),
- ``app.gateway.registry`` (Redis key layout and node registry),
- ``app.gateway.commands`` (the Redis command bus client).

Everything else in ``app.gateway`` (server, session, state writer with its database batch, Redis
writer and semaphore, metrics, simulator) is the gateway process's plumbing and is never imported
by them, at module level or inside a function.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = ("app/services", "app/views", "app/api", "app/tasks")
ALLOWED = ("app.gateway.ykc", "app.gateway.registry", "app.gateway.commands")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # "from app.gateway import server" imports the submodule
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if node.module in ("app.gateway", "app")]
    return found


def is_allowed(module: str) -> bool:
    if module != "app.gateway" and not module.startswith("app.gateway."):
        return True
    return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED)


def violations() -> list[str]:
    bad = []
    for folder in CONSUMERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for lineno, module in imported_modules(path):
                if module == "app.gateway":
                    continue                 # the package itself (its names are checked one by one)
                if not is_allowed(module):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return bad


def test_web_services_api_tasks_never_import_gateway_plumbing():
    assert violations() == []


def test_the_scan_sees_every_import_form(tmp_path):
    """The scan itself: module-level, function-level and ``from app.gateway import x`` forms."""
    sample = tmp_path / "sample.py"
    sample.write_text("import app.gateway.server\n"
                      "from app.gateway import session, ykc\n"
                      "def f():\n    from app.gateway.state_writer import DbBatch\n"
                      "from app.gateway.ykc.codes import GunStatus\n"
                      "from app.gateway.registry import pile_key\n", encoding="utf-8")
    flagged = sorted(m for _, m in imported_modules(sample) if m != "app.gateway" and not is_allowed(m))
    assert flagged == ["app.gateway.server", "app.gateway.session", "app.gateway.state_writer"]


def test_old_mixed_module_is_gone():
    assert not (ROOT / "app/services/gateway_state.py").exists()
    assert (ROOT / "app/gateway/state_writer.py").exists()
    assert (ROOT / "app/services/live_state.py").exists()

"""Every setting the code reads is defined in ``config.py`` and read there from the environment.

The code is scanned (AST) for config reads: ``<x>.config.get("K")``, ``<x>.config["K"]``,
``config.get("K")`` / ``config["K"]`` / ``cfg.get("K")`` / ``cfg["K"]`` (a local holding the app's
config), ``_cfg("K", ...)`` and ``get_config().K`` (also through a name bound to ``get_config()``).
A key that ``config.py`` does not define fails (a typo'd or undocumented key silently reads its
default: ``BILL_MISSING_MINUTES`` was set by operators while the code read
``CHARGING_BILL_MISSING_MINUTES``). A read with a computed key must be listed in ``DYNAMIC`` with
the keys it can take (by file and function).
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import config

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "app").rglob("*.py")) + [ROOT / "run.py"]
CONFIG_NAMES = {"config", "cfg"}         # locals holding the app's config (``config = self.app.config``)
ENV_READERS = {"env", "env_int", "env_float", "env_bool"}


def _dynamic_keys():
    """Reads whose key is computed, by (file, function): the keys each can take."""
    from app.services import pricing

    pile_commands = (ROOT / "app/services/pile_commands.py").read_text()
    timeouts = {node.value for node in ast.walk(ast.parse(pile_commands))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value.startswith("GATEWAY_") and node.value.endswith("_TIMEOUT")}
    return {
        # tolerances(): f"PRICING_TOLERANCE_{k.upper()}" for k in DEFAULT_TOLERANCE
        ("app/services/pricing.py", "tolerances"): {f"PRICING_TOLERANCE_{k.upper()}"
                                                    for k in pricing.DEFAULT_TOLERANCE},
        # _timeout(timeout, setting): the setting names used in this module
        ("app/services/pile_commands.py", "_timeout"): timeouts,
        # _cfg(name, default): its callers' keys are reads of their own (checked as such)
        ("app/services/charging.py", "_cfg"): {key for path, key, _, _ in all_reads()
                                               if path == "app/services/charging.py" and key},
    }


def _is_config_object(node) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "config":
        return True
    return isinstance(node, ast.Name) and node.id in CONFIG_NAMES


def _is_get_config(node) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "get_config")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "get_config"))


def config_reads(path: Path):
    """(key or None when computed, line, enclosing function) of every config read in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    # names bound to a config class: ``cfg = get_config()``
    class_names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_get_config(node.value)
                   for t in node.targets if isinstance(t, ast.Name)}
    reads = []

    def key_of(node):
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_config_object(node.value):
            reads.append((key_of(node.slice), node.lineno, function))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and _is_config_object(func.value):
                reads.append((key_of(node.args[0]), node.lineno, function))
            elif isinstance(func, ast.Name) and func.id == "_cfg":
                reads.append((key_of(node.args[0]), node.lineno, function))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and node.attr.isupper() and (
                _is_get_config(node.value) or (isinstance(node.value, ast.Name) and node.value.id in class_names)):
            reads.append((node.attr, node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return reads


def all_reads():
    out = []
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        out.extend((rel, key, line, function) for key, line, function in config_reads(path))
    return out


def _env_settings():
    """Settings of config.py whose value is read from the environment (an env*() call in their
    expression, or another such setting / module variable), and every setting defined at all."""
    tree = ast.parse((ROOT / "config.py").read_text())
    from_env, defined = {"INSTANCE_DIR"}, set()     # module level: os.environ.get("INSTANCE_DIR", ...)

    def reads_env(expr) -> bool:
        for node in ast.walk(expr):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ENV_READERS:
                return True
            if isinstance(node, ast.Name) and node.id in from_env:
                return True
        return False

    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name) and target.id.isupper():
                        defined.add(target.id)
                        if reads_env(stmt.value):
                            from_env.add(target.id)
    return from_env, defined


def test_scanner_finds_the_known_reads():
    """The scanner itself: it sees each pattern (else the real test below would pass vacuously)."""
    keys = {(path, key) for path, key, _, _ in all_reads()}
    assert ("app/services/charging.py", "BILL_MISSING_MINUTES") in keys          # _cfg(...)
    assert ("app/services/charging.py", "CHARGING_START_TIMEOUT") in keys
    assert ("app/services/occupancy.py", "OCCUPANCY_MAX_HOURS") in keys         # current_app.config.get
    assert ("app/gateway/server.py", "GATEWAY_HEARTBEAT_INTERVAL") in keys      # config[...]
    assert ("app/tasks/cron_config.py", "SETTLEMENT_WATCHDOG_SECONDS") in keys  # get_config().X
    assert ("run.py", "GATEWAY_PORT") in keys                                    # cfg = get_config(); cfg.X
    assert ("app/views/params.py", "CPMS_MAX_PAGE_SIZE") in keys                # cfg.get(...)
    assert len(keys) > 40


def test_every_config_key_read_in_the_code_is_defined_in_config_py():
    from_env, defined = _env_settings()
    dynamic = _dynamic_keys()
    missing, computed = [], []
    for path, key, line, function in all_reads():
        if key is None:
            if (path, function) not in dynamic:
                computed.append(f"{path}:{line} ({function})")
            continue
        if key not in defined:
            missing.append(f"{path}:{line} {key}")
    for (path, function), keys in dynamic.items():
        assert keys, f"{path} ({function}): no keys found for its computed config read"
        missing.extend(f"{path} ({function}) {key}" for key in sorted(keys - defined))
    assert not computed, f"config read with a computed key (list its keys in DYNAMIC): {computed}"
    assert not missing, f"config keys read by the code but not defined in config.py: {missing}"


def test_every_setting_read_by_the_code_comes_from_the_environment():
    from_env, defined = _env_settings()
    keys = {key for _, key, _, _ in all_reads() if key} | set().union(*_dynamic_keys().values())
    not_env = sorted(k for k in keys if k in defined and k not in from_env and k not in config.FIXED_SETTINGS)
    assert not not_env, f"settings read by the code but not overridable by an environment variable: {not_env}"
    # the fixed list stays honest: defined, really fixed, really read
    assert config.FIXED_SETTINGS <= defined
    assert not (config.FIXED_SETTINGS & from_env)
    assert config.FIXED_SETTINGS <= keys


def test_the_issue_settings_are_read_from_the_environment():
    """BILL_MISSING_MINUTES, CHARGING_STUCK_MINUTES, CHARGING_START_TIMEOUT and CHARGING_MIN_BALANCE
    set in the environment reach every config class (a fresh interpreter imports config.py)."""
    env = dict(os.environ, BILL_MISSING_MINUTES="7", CHARGING_STUCK_MINUTES="3", CHARGING_START_TIMEOUT="45",
               CHARGING_MIN_BALANCE="12.50")
    code = ("import json, config; print(json.dumps({n: {k: str(getattr(c, k)) for k in ("
            "'BILL_MISSING_MINUTES', 'CHARGING_STUCK_MINUTES', 'CHARGING_START_TIMEOUT', 'CHARGING_MIN_BALANCE')}"
            " for n, c in config.CONFIGS.items()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    for name, values in json.loads(out).items():
        assert values == {"BILL_MISSING_MINUTES": "7", "CHARGING_STUCK_MINUTES": "3",
                          "CHARGING_START_TIMEOUT": "45", "CHARGING_MIN_BALANCE": "12.50"}, name
    assert Decimal(config.BaseConfig.CHARGING_MIN_BALANCE) == Decimal("5.00")  # a Decimal string, never float

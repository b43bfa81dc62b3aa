"""``requirements.txt`` is what production runs, ``requirements-dev.txt`` adds the test and lint tools.

- every import of ``app/``, ``run.py``, ``config.py`` and ``migrations/`` maps (through
  ``importlib.metadata.packages_distributions()``) to a distribution declared in ``requirements.txt``
  (reproduction: ``dateutil`` was imported by the order screens and declared nowhere);
- every import of ``tests/`` and ``bench/`` is declared in ``requirements-dev.txt`` (which includes
  production with ``-r``); test tools are not in production;
- every line has an upper bound, and the venv satisfies both files;
- ``./dev.sh run`` installs production only, ``./dev.sh test`` the dev file (run on a copy of the
  script with a stand-in interpreter that records what it is asked to do).
"""
import ast
import importlib.metadata as md
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROD = ROOT / "requirements.txt"
DEV = ROOT / "requirements-dev.txt"
TEST_TOOLS = {"pytest", "pytest-flask", "hypothesis", "playwright", "ruff"}
UPPER = {"<", "<=", "==", "~=", "==="}


def _lines(path):
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _requirements(path) -> dict[str, Requirement]:
    """{canonical name: Requirement} of ``path``, following ``-r`` includes."""
    out = {}
    for line in _lines(path):
        if line.startswith("-r "):
            out.update(_requirements(path.parent / line[3:].strip()))
            continue
        assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}"
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"{path.name}: {req.name} declared twice"
        out[name] = req
    return out


def _first_party():
    return {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and any(p.rglob("*.py"))))}


def _imports(paths) -> dict[str, str]:
    """{top-level module: first place it is imported} of every import (module level or inside functions)."""
    out = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if (path.parent / f"{top}.py").exists():  # a script's sibling module (bench/)
                    continue
                out.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def _undeclared(paths, declared: dict[str, Requirement]) -> list[str]:
    dists = md.packages_distributions()
    local = _first_party()
    imports = _imports(paths)
    assert len(imports) > 10
    missing = []
    for module, where in sorted(imports.items()):
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        providers = {canonicalize_name(d) for d in dists.get(module, ())}
        if not providers:
            missing.append(f"{module} ({where}): installed by no distribution")
        elif not providers & set(declared):
            missing.append(f"{module} ({where}): from {', '.join(sorted(providers))}, not declared")
    return missing


def _files(*names):
    out = []
    for name in names:
        path = ROOT / name
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def test_every_production_import_is_declared_in_requirements_txt():
    missing = _undeclared(_files("app", "run.py", "config.py", "migrations"), _requirements(PROD))
    assert missing == [], "declare in requirements.txt:\n" + "\n".join(missing)


def test_dateutil_is_declared_for_production():
    """Reproduction: ``app/views/orders.py`` parses the date filters with dateutil."""
    dists = {canonicalize_name(d) for d in md.packages_distributions()["dateutil"]}
    assert dists == {"python-dateutil"} and "python-dateutil" in _requirements(PROD)


def test_every_test_and_bench_import_is_declared_in_requirements_dev_txt():
    missing = _undeclared(_files("tests", "bench"), _requirements(DEV))
    assert missing == [], "declare in requirements-dev.txt:\n" + "\n".join(missing)


def test_the_dev_file_adds_the_tools_to_production_and_production_has_none():
    assert _lines(DEV)[0] == "-r requirements.txt"
    prod, dev = _requirements(PROD), _requirements(DEV)
    assert TEST_TOOLS <= set(dev)
    assert not TEST_TOOLS & set(prod), "test tools belong in requirements-dev.txt"
    assert set(prod) <= set(dev)


@pytest.mark.parametrize("path", [PROD, DEV], ids=lambda p: p.name)
def test_every_line_has_an_upper_bound(path):
    unbounded = [str(r) for r in _requirements(path).values() if not {s.operator for s in r.specifier} & UPPER]
    assert unbounded == []


def test_the_environment_satisfies_both_files():
    wrong = []
    for name, req in _requirements(DEV).items():
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            wrong.append(f"{req}: not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req}: {version} installed")
    assert wrong == []


def _dev_sh(tmp_path, *args):
    """Run a copy of ``dev.sh`` whose ``.venv/bin/python`` only records its arguments."""
    work, log, bin_dir = tmp_path / "tree", tmp_path / "calls.log", tmp_path / "bin"
    if not work.exists():
        (work / ".venv" / "bin").mkdir(parents=True)
        (work / "app" / "static" / "vendor").mkdir(parents=True)
        (work / "app" / "static" / "vendor" / "echarts.min.js").write_text("")  # no npm
        for name in ("dev.sh", "requirements.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / name, work / name)
        fake = work / ".venv" / "bin" / "python"
        fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
        fake.chmod(0o755)
        bin_dir.mkdir()
        (bin_dir / "chromium").write_text("#!/bin/sh\n")  # no apt-get
        (bin_dir / "chromium").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    before = log.read_text().splitlines() if log.exists() else []
    proc = subprocess.run(["bash", str(work / "dev.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line for line in log.read_text().splitlines()[len(before):] if "pip install" in line or
            line.startswith(("run.py", "-m pytest"))]


def test_dev_sh_run_installs_production_only_and_test_installs_the_dev_file(tmp_path):
    calls = _dev_sh(tmp_path, "run", "web")
    assert "-m pip install -q -r requirements.txt" in calls and calls[-1] == "run.py web"
    assert not any("requirements-dev.txt" in c for c in calls)
    calls = _dev_sh(tmp_path, "test", "-x")
    assert "-m pip install -q -r requirements-dev.txt" in calls
    assert calls[-1] == "-m pytest -q -p no:cacheprovider -x"
    # installed once: a second run of either command does not install again
    assert _dev_sh(tmp_path, "test") == ["-m pytest -q -p no:cacheprovider"]
    assert _dev_sh(tmp_path, "run") == ["run.py"]
    # a change of the production file reinstalls for both
    with open(tmp_path / "tree" / "requirements.txt", "a") as fh:
        fh.write("# changed\n")
    assert "-m pip install -q -r requirements-dev.txt" in _dev_sh(tmp_path, "test")
    assert "-m pip install -q -r requirements.txt" in _dev_sh(tmp_path, "run")

"""The shipped deployment files (deploy/) run what the platform has: the Compose file parses and runs
every process role ``run.py`` knows (web by gunicorn), Redis with AOF, two gateway nodes behind a load
balancer health-checking /healthz; every systemd unit's command exists (``run.py <role>``, gunicorn on
``app:create_app()``, ``flask`` subcommands the app really has)."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

import run

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = "/opt/cpms/.venv/bin/"


def compose():
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def unit_files():
    return sorted((DEPLOY / "systemd").glob("*.service"))


def directives(path):
    """(section, key, value) of a systemd unit, continuation lines joined, repeated keys kept."""
    out, section, pending = [], None, ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def flask_commands(app):
    """The flask CLI of the app, as ``flask --app app:create_app`` sees it: {command: subcommands}."""
    env = dict(os.environ, CPMS_CONFIG="test", DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], INSTANCE_DIR=app.config["INSTANCE_DIR"])
    code = ("import json; from flask.cli import FlaskGroup, ScriptInfo; import click; "
            "g = FlaskGroup(); ctx = click.Context(g, obj=ScriptInfo(app_import_path='app:create_app')); "
            "print(json.dumps({n: sorted(getattr(g.get_command(ctx, n), 'commands', {})) "
            "for n in g.list_commands(ctx)}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_command(argv, commands, where):
    """``argv`` runs something that exists: run.py <role>, gunicorn on the app factory, flask <cmd>."""
    exe = Path(argv[0]).name
    if exe.startswith("python"):
        assert argv[1] == "run.py" and (ROOT / "run.py").exists(), where
        assert argv[2] in run.ROLES, f"{where}: unknown role {argv[2:]}"
        return ("run", argv[2])
    if exe == "gunicorn":
        assert "app:create_app()" in argv, where
        assert argv[argv.index("-k") + 1] == "gevent", where      # workers patch gevent themselves
        assert "--preload" not in argv, where
        return ("gunicorn", "web")
    if exe == "flask":
        args = list(argv[1:])
        if args[:1] == ["--app"]:
            assert args[1] == "app:create_app", where
            args = args[2:]
        assert args[0] in commands, f"{where}: flask has no command {args[0]!r}"
        if commands[args[0]]:
            assert args[1] in commands[args[0]], f"{where}: flask {args[0]} has no {args[1]!r}"
        return ("flask", " ".join(args))
    raise AssertionError(f"{where}: unexpected command {argv}")


def test_compose_file_parses_and_runs_every_role(app):
    services = compose()["services"]
    commands = flask_commands(app)
    roles = {}
    for name, service in services.items():
        command = service.get("command")
        if not command or name in ("redis", "postgres", "lb"):
            continue
        if command[:2] == ["sh", "-c"]:
            for part in command[2].split("&&"):
                check_command(shlex.split(part), commands, f"compose {name}")
            continue
        kind, what = check_command(command, commands, f"compose {name}")
        roles.setdefault(what, []).append(name)
        assert re.fullmatch(rf"{what}(-\d+)?", name), f"service {name} runs {what}"
        env = service["environment"]
        assert env["CPMS_CONFIG"] == "production" and "postgresql" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
    assert set(roles) == set(run.ROLES), f"roles without a service: {set(run.ROLES) - set(roles)}"
    assert len(roles["gateway"]) >= 2 and len(roles["cron"]) == 1
    node_ids = {services[n]["environment"]["GATEWAY_NODE_ID"] for n in roles["gateway"]}
    assert len(node_ids) == len(roles["gateway"])                          # one id per node
    for name in roles["gateway"]:
        env = services[name]["environment"]
        assert env["GATEWAY_METRICS_HOST"] == "0.0.0.0"
        assert f":{env['GATEWAY_METRICS_PORT']}/healthz" in " ".join(services[name]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert services["postgres"]["image"].startswith("postgres:")
    # the load balancer checks every gateway node's /healthz on its metrics port
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert "uri /healthz" in haproxy
    for name in roles["gateway"]:
        assert re.search(rf"server {name} {name}:8767", haproxy), name
        assert f"check port {services[name]['environment']['GATEWAY_METRICS_PORT']}" in haproxy


def test_systemd_units_run_existing_commands(app):
    commands = flask_commands(app)
    units = unit_files()
    ran = set()
    for path in units:
        found = directives(path)
        sections = {s for s, _, _ in found}
        assert {"Unit", "Service", "Install"} <= sections, path.name
        service = {k: v for s, k, v in found if s == "Service"}
        assert service["WorkingDirectory"] == "/opt/cpms", path.name
        assert ("Service", "EnvironmentFile", "/etc/cpms/cpms.env") in found, path.name
        starts = [v for s, k, v in found if s == "Service" and k == "ExecStart"]
        assert starts, path.name
        for start in starts:
            argv = shlex.split(start)
            assert argv[0].startswith(VENV_BIN), f"{path.name}: {argv[0]}"
            ran.add(check_command(argv, commands, path.name))
        if path.name != "cpms-migrate.service":
            assert service["Restart"] == "always", path.name
    assert {what for kind, what in ran if kind in ("run", "gunicorn")} == set(run.ROLES)
    assert ("flask", "db upgrade") in ran and ("flask", "init-security") in ran
    # cpms.target pulls in units that exist
    target = (DEPLOY / "systemd" / "cpms.target").read_text()
    wanted = re.search(r"^Wants=(.*)$", target, re.M).group(1).split()
    names = {p.name for p in units}
    for unit in wanted:
        template = re.sub(r"@[^.]+\.", "@.", unit)
        assert unit in names or template in names, unit

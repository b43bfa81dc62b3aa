"""Application factory."""
from flask import Flask


def create_app(config=None, **overrides):
    """Build the Flask app. ``config``: a config class, its name, or None for CPMS_CONFIG."""
    from flask_appbuilder import AppBuilder

    import config as config_module
    from app.extensions import csrf, db, init_security_headers, migrate, redis_holder

    app = Flask(__name__, instance_path=config_module.INSTANCE_DIR, instance_relative_config=False)
    cfg = config if isinstance(config, type) else config_module.get_config(config)
    app.config.from_object(cfg)
    app.config.update(overrides)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config_module._secret_key()
    redis_holder.init_app(app)
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        url = app.config["REDIS_URL"]
        app.config["RATELIMIT_STORAGE_URI"] = url.replace("unix://", "redis+unix://", 1)

    db.init_app(app)
    migrate.init_app(app, db, compare_type=True, render_as_batch=True,
                     directory=app.config.get("MIGRATIONS_DIR", config_module.BASE_DIR + "/migrations"))
    csrf.init_app(app)
    from app.views import params

    params.init_app(app)  # bounded <int:> converter (before any route), argument checks, backstop
    init_security_headers(app)
    with app.app_context():
        from app import models  # noqa: F401  (tables on the shared metadata)
        from app.security import models as security_models  # noqa: F401
        from app.services.interconnect_push import install_order_listeners

        install_order_listeners()  # partner order events -> T/CEC pushes, after commit
        from app.services import occupancy

        occupancy.install_listeners()  # deleted connectors -> their Redis plug/occupation state dropped
        from app.services import subscribers

        subscribers.install()      # receivers of the domain signals (app.services.events)

        appbuilder = AppBuilder()
        appbuilder.init_app(app, db.session)
        from app.security import sessions

        sessions.init_app(app, appbuilder)
        from app.views import register_views

        register_views(appbuilder)
        from app.api import register_apis

        register_apis(appbuilder)
    from app.cli import register_cli

    register_cli(app)
    return app

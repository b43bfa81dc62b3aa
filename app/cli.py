"""Flask CLI commands: init-security, create-admin-user, demo-data, setup (all of them).
Each runs as the platform, in its named :func:`app.security.scope.platform_scope`."""
import click
from flask import current_app
from flask.cli import with_appcontext

from app.security.scope import platform_job, platform_scope


def register_cli(app):
    @app.cli.command("init-security")
    @with_appcontext
    @platform_job("init-security")
    def init_security():
        """Roles and permissions for every registered view and menu."""
        from app.services.accounts import sync_roles_and_permissions

        sync_roles_and_permissions()
        click.echo("roles and permissions synced")

    @app.cli.command("create-platform-admin")
    @click.option("--username", default=None)
    @click.option("--password", default=None)
    @with_appcontext
    @platform_job("create-platform-admin")
    def create_platform_admin(username, password):
        from app.services.accounts import ensure_admin

        user, pw = ensure_admin(username, password)
        click.echo(f"admin {user}: " + ("created, password " + pw if pw else "already exists"))

    @app.cli.command("demo-data")
    @with_appcontext
    @platform_job("demo-data")
    def demo_data():
        """Load the demo operators, stations, piles, members and staff users."""
        from app.services.demo import load_demo_data

        summary = load_demo_data()
        click.echo(summary)

    @app.cli.command("setup")
    @click.option("--demo/--no-demo", default=True)
    @with_appcontext
    def setup(demo):
        """Migrate, sync permissions, create the admin, load demo data on first start."""
        click.echo(setup_platform(demo=demo))


def setup_platform(demo=True):
    """Idempotent first-start routine; returns a text to print (incl. a generated password)."""
    from flask_migrate import upgrade

    from app.services.accounts import ensure_admin, sync_roles_and_permissions

    with platform_scope("setup"):
        upgrade()
        sync_roles_and_permissions()
        user, password = ensure_admin()
    lines = []
    if demo:
        from app.services.demo import load_demo_data

        with platform_scope("demo-data"):
            lines.append(load_demo_data())
    if password:
        lines.append(f"Admin account created: username={user} password={password}  (shown once)")
    else:
        lines.append(f"Admin account: {user} (already existed; password unchanged)")
    lines.append(f"Admin login: http://127.0.0.1:{current_app.config['WEB_PORT']}/login/")
    return "\n".join(lines)

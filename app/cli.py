"""Flask CLI commands: init-security, create-platform-admin, demo-data, setup (migrate, permissions,
admin; demo data only with ``--demo``). Each runs as the platform, in its named
:func:`app.security.scope.platform_scope`."""
import click
from flask import current_app
from flask.cli import with_appcontext

from app.security.scope import platform_job, platform_scope


def register_cli(app):
    from app.cli_stats import stats_cli
    from app.cli_wallet import wallet_cli

    app.cli.add_command(stats_cli)
    app.cli.add_command(wallet_cli)

    @app.cli.command("init-security")
    @with_appcontext
    @platform_job("init-security")
    def init_security():
        """Roles and permissions for every registered view and menu."""
        from app.services.accounts import sync_roles_and_permissions

        sync_roles_and_permissions()
        click.echo(permissions_summary())

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
    @click.option("--demo/--no-demo", default=False, help="Also load the demo data (a demo system only).")
    @click.option("--history-days", type=click.IntRange(0, 366), default=0,
                  help="With --demo: also replay this many past days of charging (only without orders).")
    @with_appcontext
    def setup(demo, history_days):
        """Migrate, sync roles and permissions, create the admin; demo data only with --demo."""
        click.echo(setup_platform(demo=demo, history_days=history_days if demo else 0))


def permissions_summary():
    """What ``init-security`` did, from the database: each built-in role's permission count, and the
    permissions missing from the policy table (granted to platform admins only)."""
    from app.security import policy

    sm = current_app.appbuilder.sm
    names = [sm.auth_role_admin, *policy.TENANT_ROLES]
    counts = [f"{name} {len(role.permissions)}" for name in names if (role := sm.find_role(name))]
    lines = ["Roles and permissions synced from app/security/policy.py: " + ", ".join(counts)
             + " permissions"]
    unknown = sorted(f"{pvm.permission.name} on {pvm.view_menu.name}"
                     for pvm in sm.session.query(sm.permissionview_model).all()
                     if not policy.is_known(pvm.view_menu.name, pvm.permission.name))
    if unknown:
        lines.append(f"{len(unknown)} permissions are not in the policy table (platform admins only): "
                     + "; ".join(unknown))
    return "\n".join(lines)


def setup_platform(demo=False, history_days=0):
    """Idempotent first-start routine; returns a text to print (incl. a generated password).
    ``history_days`` (demo only): the demo piles' past, replayed through the real order path when the
    database has no orders yet (:mod:`app.gateway.simulator.history`)."""
    from flask_migrate import upgrade

    from app.services.accounts import ensure_admin, sync_roles_and_permissions

    with platform_scope("setup"):
        upgrade()
        sync_roles_and_permissions()
        user, password = ensure_admin()
        lines = ["Database migrated.", permissions_summary()]
    if demo:
        from app.services.demo import load_demo_data

        with platform_scope("demo-data"):
            lines.append(load_demo_data())
        if history_days:
            from app.gateway.simulator.history import generate_history

            with platform_scope("demo-history"):
                lines.append(generate_history(history_days))
    if password:
        lines.append(f"Admin account created: username={user} password={password}  (shown once)")
    else:
        lines.append(f"Admin account: {user} (already existed; password unchanged)")
    lines.append(f"Admin login: http://127.0.0.1:{current_app.config['WEB_PORT']}/login/")
    return "\n".join(lines)

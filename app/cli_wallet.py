"""``flask wallet check``: every member's balance, and every organization's account balance, equals
the sum of its ledger."""
import click
from flask.cli import AppGroup

from app.security.scope import platform_job

wallet_cli = AppGroup("wallet", help="Member wallets and organization accounts.")


@wallet_cli.command("check")
@platform_job("wallet-check")
def check_command():
    """List the members and organizations whose balance differs from the sum of their ledger; exit 1 if any."""
    from app.services.organizations import balance_differences as organization_differences
    from app.services.wallet import balance_differences

    differences = balance_differences()
    for member, ledger in differences:
        click.echo(f"member {member.member_no} (id {member.id}): balance {member.balance}, "
                   f"ledger {ledger}, difference {member.balance - ledger}")
    org_differences = organization_differences()
    for org, ledger in org_differences:
        click.echo(f"organization {org.name} (id {org.id}): balance {org.balance}, "
                   f"ledger {ledger}, difference {org.balance - ledger}")
    if differences or org_differences:
        raise SystemExit(1)
    click.echo("every balance equals the sum of its ledger")

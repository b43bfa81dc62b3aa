"""``flask wallet check``: every member's balance equals the sum of its ledger."""
import click
from flask.cli import AppGroup

from app.security.scope import platform_job

wallet_cli = AppGroup("wallet", help="Member wallets.")


@wallet_cli.command("check")
@platform_job("wallet-check")
def check_command():
    """List the members whose balance differs from the sum of their ledger; exit 1 if any."""
    from app.services.wallet import balance_differences

    differences = balance_differences()
    for member, ledger in differences:
        click.echo(f"member {member.member_no} (id {member.id}): balance {member.balance}, "
                   f"ledger {ledger}, difference {member.balance - ledger}")
    if differences:
        raise SystemExit(1)
    click.echo("every balance equals the sum of its ledger")

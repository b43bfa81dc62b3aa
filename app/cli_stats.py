"""``flask stats recompute --from YYYY-MM-DD --to YYYY-MM-DD``: rebuild the daily statistics."""
from datetime import date

import click
from flask.cli import AppGroup

from app.security.scope import platform_job

stats_cli = AppGroup("stats", help="Daily statistics (reports and dashboard).")


def _day(_ctx, _param, value):
    try:
        return date.fromisoformat(value)
    except ValueError as ex:
        raise click.BadParameter("use YYYY-MM-DD") from ex


@stats_cli.command("recompute")
@click.option("--from", "start", required=True, callback=_day, help="First local day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, callback=_day, help="Last local day (inclusive), YYYY-MM-DD.")
@click.option("--station", "station_ids", type=int, multiple=True, help="Only these station ids.")
@platform_job("daily-stats")
def recompute_command(start, end, station_ids):
    """Recompute the daily station / channel rows of a date range from the orders."""
    from app.services.stats import recompute

    rows = recompute(start, end, station_ids or None)
    click.echo(f"{rows} rows written for {min(start, end)} .. {max(start, end)}")

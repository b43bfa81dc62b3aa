"""Connects the receivers of the domain signals (app.services.events); called once per process by
create_app. Each area adds its receivers here."""

_installed = False


def install():
    global _installed
    if _installed:
        return
    _installed = True
    from app.services import coupons

    coupons.install()   # settled orders send order_finished; order rewards and registration gifts (jobs)

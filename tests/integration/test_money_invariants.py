"""The demo install itself satisfies the money invariants the fault-injection suite checks."""
from tests.integration.money_invariants import assert_settled_once, assert_wallets_match_ledger


def test_demo_wallets_equal_their_ledgers(app):
    assert_wallets_match_ledger(app)


def test_demo_orders_are_settled_at_most_once(app):
    assert_settled_once(app)

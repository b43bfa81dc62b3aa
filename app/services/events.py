"""Domain signals (blinker, as Flask's own signals): a service announces what happened after its commit;
other services subscribe without the announcer importing them.

- ``member_registered(member_id)``: a new member account was created (member app login, admin).
- ``order_finished(order_id)``: a charging order was settled (paid or owed); sent after the commit.

Receivers run in the sender's process and must not fail the sender: they catch their own errors
(or queue a job). Connect receivers in ``app.services.subscribers.install()``.
"""
from blinker import Namespace

_signals = Namespace()
member_registered = _signals.signal("member-registered")
order_finished = _signals.signal("order-finished")

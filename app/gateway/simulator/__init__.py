"""YKC pile simulator: virtual piles on gevent for demos, integration tests and load tests.

    python -m app.gateway.simulator --host 127.0.0.1 --port 8767 --piles 10 --codes-from-db
"""

from app.gateway.simulator.charging import ChargeSession
from app.gateway.simulator.pile import SimConfig, VirtualPile
from app.gateway.simulator.runner import Simulator, Stats, codes_with_prefix, piles_from_db

__all__ = ["ChargeSession", "SimConfig", "Simulator", "Stats", "VirtualPile", "codes_with_prefix", "piles_from_db"]

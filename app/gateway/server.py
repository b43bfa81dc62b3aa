"""Pile gateway: a gevent StreamServer, one greenlet per pile connection."""
import logging

from gevent.server import StreamServer

log = logging.getLogger(__name__)


def handle_connection(sock, address):
    """Protocol handling per connection (YKC sessions: see app.gateway.session)."""
    from app.gateway import session

    session.serve(sock, address)


def make_server(host, port, handler=handle_connection):
    return StreamServer((host, port), handler)

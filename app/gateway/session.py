"""One pile connection. The YKC session logic replaces this minimal placeholder (issue 3)."""
import logging

log = logging.getLogger(__name__)


def serve(sock, address, idle_timeout=60):
    sock.settimeout(idle_timeout)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()

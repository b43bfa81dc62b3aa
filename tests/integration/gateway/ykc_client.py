"""A scripted, blocking YKC pile for tests: send exactly the frames a test wants, read the answers."""

from __future__ import annotations

import socket
import threading
import time

from app.gateway.ykc import ErrorEvent, FrameReader, Heartbeat, Login, encode_frame


class PileClient:
    def __init__(self, port: int, code: str, host: str = "127.0.0.1"):
        self.code = code
        self.sock = socket.create_connection((host, port), timeout=5)
        self.reader = FrameReader()
        self.backlog: list = []                # frames read but not asked for yet
        self.seq = 100
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._beating = False

    def send(self, msg, seq: int | None = None) -> int:
        if seq is None:
            seq = self.seq = (self.seq + 1) & 0xFFFF
        self.send_bytes(encode_frame(msg, seq))
        return seq

    def send_bytes(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def _read(self, timeout: float) -> bool:
        """Read once; False when the peer closed the connection."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        if not data:
            return False
        self.backlog += [e for e in self.reader.feed(data) if not isinstance(e, ErrorEvent)]
        return True

    def expect(self, frame_type: int, timeout: float = 5.0, **match):
        """The next frame of ``frame_type`` whose fields equal ``match`` (others stay in the backlog)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.backlog:
                msg = event.message
                if event.header.frame_type == frame_type and all(getattr(msg, k) == v for k, v in match.items()):
                    self.backlog.remove(event)
                    return event.header, msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame 0x{frame_type:02X} {match} within {timeout} s; "
                                     f"got {[hex(e.header.frame_type) for e in self.backlog]}")
            try:
                if not self._read(left):
                    raise AssertionError(f"connection closed while waiting for 0x{frame_type:02X}")
            except TimeoutError:
                continue

    def closed_within(self, timeout: float) -> bool:
        """True when the gateway closes the connection within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._read(max(0.01, deadline - time.monotonic())):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True
        return False

    def login(self, guns: int = 2, version: int = 0x0F):
        self.send(Login(pile_code=self.code, pile_type=0, gun_count=guns, protocol_version=version,
                        firmware_version="TEST1.00", network_type=1, sim="898604D11722D0348606", carrier=3))
        _, ack = self.expect(0x02)
        return ack

    def start_heartbeats(self, interval: float) -> None:
        self._beating = True

        def beat():
            while self._beating:
                try:
                    self.send(Heartbeat(pile_code=self.code, gun="01"))
                except OSError:
                    return
                time.sleep(interval)

        self._beat = threading.Thread(target=beat, daemon=True)
        self._beat.start()

    def stop_heartbeats(self) -> None:
        self._beating = False
        if self._beat is not None:
            self._beat.join(2)

    def close(self) -> None:
        self.stop_heartbeats()
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

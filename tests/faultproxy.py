"""A TCP proxy a test controls: `freeze()` makes the server behind it stop answering.

Frozen, the proxy still accepts connections (as a SIGSTOPped server's kernel does) but forwards
no byte in either direction; `thaw()` resumes forwarding whatever was waiting. Used by the
frozen-database tests and by bench/faults.py.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class FreezableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._running = threading.Event()  # set: forwarding; clear: frozen
        self._running.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def close(self) -> None:
        self._closed.set()
        self._running.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._running.wait()  # frozen: the connection is accepted but the server says nothing
        if self._closed.is_set():
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        peers = {client: server, server: client}
        sel = selectors.DefaultSelector()
        for sock in peers:
            sock.setblocking(True)
            sel.register(sock, selectors.EVENT_READ)
        try:
            while not self._closed.is_set():
                self._running.wait()
                for key, _ in sel.select(timeout=0.05):
                    if not self._running.is_set():
                        break  # frozen while this batch waited: leave the bytes unread
                    src = key.fileobj
                    assert isinstance(src, socket.socket)
                    data = src.recv(65536)
                    if not data:
                        return
                    peers[src].sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()

"""gunicorn's gthread worker, answering the requests gunicorn refuses itself in the API's JSON.

A request line over gunicorn's limit (414), too many or too large headers (431), a malformed
request (400) and the like never reach Flask: gunicorn writes an HTML page of its own, which
also echoes what it could not parse. This worker lets gunicorn choose the status, log the error
and write its access-log line as usual, then sends `{"error": {"code", "message"}}` instead of
the page, with a fixed message per status and nothing from the request.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.http import HTTP_STATUS_CODES

_MESSAGES = {
    400: "malformed request",
    403: "request forbidden",
    414: "the request line is too long",
    417: "expectation failed",
    431: "the request headers are too many or too large",
    500: "internal server error",
    501: "transfer coding not supported",
}


class _Capture:
    """Stands in for the client socket while gunicorn writes its error page: keeps the bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.data = bytearray()

    def gettimeout(self) -> float:
        return 0.0  # so gunicorn does not switch the real socket's blocking mode around a write

    def sendall(self, data: bytes) -> None:
        self.data += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def error_status(response: bytes) -> tuple[int, str] | None:
    """Status code and reason from the status line gunicorn wrote, or None if it wrote none."""
    line = response.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    status = int(parts[1])
    return status, parts[2] if len(parts) == 3 else HTTP_STATUS_CODES.get(status, "Error")


def json_error_response(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response in the API's error shape; the connection is closed after."""
    name = HTTP_STATUS_CODES.get(status, reason or "error")
    code = "internal_error" if status >= 500 and status != 501 else name.lower().replace(" ", "_")
    body = json.dumps(
        {"error": {"code": code, "message": _MESSAGES.get(status, name.lower())}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorWorker(ThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Capture(client)
        super().handle_error(req, captured, addr, exc)
        status = error_status(bytes(captured.data))
        if status is None:
            return
        try:
            util.write_nonblock(client, json_error_response(*status))
        except Exception:  # the client went away: nothing to answer, as in gunicorn itself
            self.log.debug("Failed to send error message.")

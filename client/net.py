"""The client's connection to the server: a QObject with signals, no widgets.

It frames requests with the shared protocol module, matches replies by id, times out
requests that get no answer, and keeps the session alive: when the socket drops it
reconnects with backoff, resumes with the session token and reports `resumed`, after
which the state layer syncs what it missed.
"""

from __future__ import annotations

import itertools
import platform
import random
import socket
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance
from PySide6.QtNetwork import QAbstractSocket, QSslCertificate, QSslSocket, QTcpSocket

from chatroom.devices import default_device_name
from chatroom.framing import FrameDecoder, FrameError, encode_frame, parse_payload
from chatroom.protocol import CLOSING_EVENT, ErrorCode, MessageError

Callback = Callable[[dict[str, Any]], None]

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
ONLINE = "online"
RECONNECTING = "reconnecting"

# Errors after which sending the same request again may succeed.
RETRYABLE = {
    ErrorCode.SERVICE_UNAVAILABLE,
    ErrorCode.TIMEOUT,
    ErrorCode.DISCONNECTED,
    ErrorCode.SHUTTING_DOWN,
    ErrorCode.RATE_LIMITED,
}
BACKOFF_S = (0.5, 1, 2, 4, 8, 15)
# The backoff starts over only after a session has held this long: a connection that
# logs in and then breaks at once (say, on a reply it cannot read) backs off instead of
# reconnecting in a tight loop.
STABLE_AFTER_MS = 30_000
# Pings keep the connection alive and find a dead one: the server closes a connection
# silent for idle_timeout_s (60 s by default, in the login reply's limits), and tells
# friends we went offline; we ping three times in that window. A ping that gets no
# answer means the path is gone even if the socket has not noticed: reconnect.
DEFAULT_IDLE_TIMEOUT_S = 60
MIN_PING_INTERVAL_MS = 2_000


def error_reply(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class ChatClient(QObject):
    stateChanged = Signal(str)  # DISCONNECTED, CONNECTING, ONLINE, RECONNECTING
    loggedIn = Signal(dict)  # the login reply: user, token, limits, rooms, friends, ...
    resumed = Signal(dict)  # same, after an automatic reconnect
    eventReceived = Signal(dict)  # a push
    sessionEnded = Signal(str)  # the server refused our token: log in again

    def __init__(self, parent: QObject | None = None, request_timeout_ms: int = 10_000) -> None:
        super().__init__(parent)
        self.request_timeout_ms = request_timeout_ms
        self.host = "127.0.0.1"
        self.port = 2019
        # TLS: verify the server against the system's CAs, or only against ca_file's.
        self.tls = False
        self.ca_file: str | None = None
        self.state = DISCONNECTED
        self.user: dict[str, Any] | None = None
        self.token: str | None = None
        # Sent with every login and resume; the user's account settings list it.
        self.device = default_device_name(socket.gethostname(), platform.system())
        self.limits: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Callback | None, QTimer]] = {}
        self._socket: QTcpSocket | None = None
        self._decoder = FrameDecoder()
        self._on_connected: list[Callable[[], None]] = []
        self._attempt = 0
        self._wanted = False  # True while the user wants to be connected
        # What the server's last `closing` push said (signed out from another device, a
        # password change, an operator): the reason to give if the resume then fails,
        # rather than the resume's own "this session has ended".
        self._closed_because: str | None = None
        self._reconnect_timer = QTimer(self)
        self._reconnect_timer.setSingleShot(True)
        self._reconnect_timer.timeout.connect(self._reconnect)
        self._keepalive = QTimer(self)
        self._keepalive.timeout.connect(self._ping)
        self._stable = QTimer(self)
        self._stable.setSingleShot(True)
        self._stable.timeout.connect(self._held)

    # ------------------------------------------------------------------ public

    def open(
        self,
        host: str,
        port: int,
        then: Callable[[], None],
        failed: Callback,
        tls: bool = False,
        ca_file: str | None = None,
    ) -> None:
        """Connect (or reuse the connection) and call `then`; `failed` gets an error.
        With `tls`, the server's certificate must verify against the system's CAs, or
        only against those in `ca_file` (PEM) when given."""
        target = (host, port, tls, ca_file or None)
        if (
            self._socket is not None
            and self._socket.state() == QAbstractSocket.SocketState.ConnectedState
        ):
            if target == (self.host, self.port, self.tls, self.ca_file):
                then()
                return
            self._drop_socket()
        self.host, self.port, self.tls, self.ca_file = target
        self._attempt = 0
        self._on_connected = [then]
        self._connect_socket(failed)

    def register(self, username: str, password: str, done: Callback) -> None:
        self.request("register", {"username": username, "password": password}, done)

    def login(self, username: str, password: str, done: Callback) -> None:
        self._login({"username": username, "password": password}, done, self.loggedIn)

    def login_with_token(self, token: str, done: Callback) -> None:
        self._login({"token": token}, done, self.loggedIn)

    def logout(self) -> None:
        """End the session on the server (its token stops working) and close."""
        self._wanted = False
        sock = self._socket
        if self.state == ONLINE and sock is not None:
            self.request("logout", {})
            # Closed at once for us (the next sign-in gets a new connection); Qt still
            # writes the queued logout before the socket closes.
            self._socket = None
            sock.blockSignals(True)
            sock.disconnectFromHost()
            sock.deleteLater()
        self._drop_socket()
        self.user = self.token = None
        self._set_state(DISCONNECTED)

    def close(self) -> None:
        """The app is quitting: close the connection but keep the session (the kept
        token resumes it at the next start)."""
        self._wanted = False
        self._drop_socket()
        self._set_state(DISCONNECTED)

    def request(self, op: str, fields: dict[str, Any], done: Callback | None = None) -> int:
        request_id = next(self._ids)
        if (
            self._socket is None
            or self._socket.state() != QAbstractSocket.SocketState.ConnectedState
        ):
            if done:
                QTimer.singleShot(
                    0, lambda: done(error_reply(ErrorCode.DISCONNECTED, "not connected"))
                )
            return request_id
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self._timed_out(request_id))
        timer.start(self.request_timeout_ms)
        self._pending[request_id] = (done, timer)
        self._socket.write(encode_frame({"op": op, "id": request_id, **fields}))
        return request_id

    def drop_connection(self) -> None:
        """For tests and 'reconnect now': close the socket as a network failure would."""
        if self._socket is not None:
            self._socket.abort()

    # ------------------------------------------------------------------ socket

    def _connect_socket(self, failed: Callback | None = None) -> None:
        self._drop_socket()
        self._decoder = FrameDecoder(self.limits.get("max_frame_bytes", 1 << 20) * 2)
        sock = self._new_socket()
        self._socket = sock
        sock.readyRead.connect(self._read)
        sock.disconnected.connect(self._socket_lost)
        tls_problems: list[str] = []
        # Non-empty once connected (and, with TLS, the server verified): later errors are
        # losses of a working connection, not "cannot connect".
        reached: list[bool] = []
        ready = sock.encrypted if isinstance(sock, QSslSocket) else sock.connected
        ready.connect(lambda: reached.append(True))

        def on_error(_err: QAbstractSocket.SocketError) -> None:
            if reached and not self._wanted:
                # The server closed a connection we did not log in on (e.g. its login
                # timeout after a wrong password): nothing to tell the user.
                self._set_state(DISCONNECTED)
            elif failed is not None and not self._wanted:
                if tls_problems:
                    advice = (
                        "The server's certificate is not trusted: if the server uses a "
                        "private CA, give its CA file."
                    )
                    message = f"Cannot connect securely to {self.where}: {tls_problems[0]}"
                else:
                    advice = "Check the address, the port and that the server is running."
                    how = "securely " if self.tls else ""
                    message = f"Cannot connect {how}to {self.where}: {sock.errorString()}"
                failed(error_reply("unreachable", f"{message}. {advice}"))
            elif self._wanted:
                self._schedule_reconnect()

        sock.errorOccurred.connect(on_error)
        if self.state != RECONNECTING:
            self._set_state(CONNECTING)
        if isinstance(sock, QSslSocket):
            # Ready once the handshake verified the server; on a bad certificate Qt
            # reports sslErrors, then aborts the connection (errorOccurred).
            sock.encrypted.connect(self._socket_connected)
            sock.sslErrors.connect(
                lambda errors: tls_problems.extend(e.errorString() for e in errors)
            )
            sock.connectToHostEncrypted(self.host, self.port)
        else:
            sock.connected.connect(self._socket_connected)
            sock.connectToHost(self.host, self.port)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _new_socket(self) -> QTcpSocket:
        if not self.tls:
            return QTcpSocket(self)
        sock = QSslSocket(self)
        if self.ca_file:
            config = sock.sslConfiguration()
            config.setCaCertificates(QSslCertificate.fromPath(self.ca_file))
            sock.setSslConfiguration(config)
        return sock

    def _socket_connected(self) -> None:
        callbacks, self._on_connected = self._on_connected, []
        for callback in callbacks:
            callback()

    def _drop_socket(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            # Nothing it does from now on concerns us (its abort would report a loss).
            sock.blockSignals(True)
            sock.abort()
            sock.deleteLater()
        self._fail_pending(ErrorCode.DISCONNECTED, "the connection was lost")
        self._keepalive.stop()
        self._stable.stop()

    def _socket_lost(self) -> None:
        self._fail_pending(ErrorCode.DISCONNECTED, "the connection was lost")
        self._keepalive.stop()
        self._stable.stop()
        if self._wanted:
            self._schedule_reconnect()
        else:
            self._set_state(DISCONNECTED)

    def _read(self) -> None:
        sock = self._socket
        if sock is None:
            return
        data = bytes(sock.readAll().data())
        try:
            payloads = self._decoder.feed(data)
        except FrameError:
            sock.abort()  # the server sent garbage: start over
            return
        for payload in payloads:
            try:
                frame = parse_payload(payload)
            except MessageError:
                continue
            if "event" in frame:
                self._handle_event(frame)
            else:
                self._handle_reply(frame)

    def _handle_event(self, frame: dict[str, Any]) -> None:
        if frame["event"] == CLOSING_EVENT and frame.get("code") == ErrorCode.SHUTTING_DOWN:
            self._attempt = 0  # a restart, not a failure: come back quickly
        elif frame["event"] == CLOSING_EVENT:
            self._closed_because = frame.get("message")
        self.eventReceived.emit(frame)

    def _handle_reply(self, frame: dict[str, Any]) -> None:
        entry = self._pending.pop(frame.get("id"), None)  # type: ignore[arg-type]
        if entry is None:
            return
        done, timer = entry
        timer.stop()
        timer.deleteLater()
        if done:
            done(frame)

    def _timed_out(self, request_id: int) -> None:
        entry = self._pending.pop(request_id, None)
        if entry and entry[0]:
            entry[0](error_reply(ErrorCode.TIMEOUT, "the server did not answer in time"))

    def _fail_pending(self, code: str, message: str) -> None:
        pending, self._pending = self._pending, {}
        for done, timer in pending.values():
            timer.stop()
            timer.deleteLater()
            if done:
                done(error_reply(code, message))

    # ------------------------------------------------------------------ session

    def _login(self, fields: dict[str, Any], done: Callback, announce: SignalInstance) -> None:
        def finished(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.user, self.token = reply["user"], reply["token"]
                self.limits = reply.get("limits", {})
                self._closed_because = None
                self._wanted = True
                self._stable.start(STABLE_AFTER_MS)
                idle_s = self.limits.get("idle_timeout_s") or DEFAULT_IDLE_TIMEOUT_S
                self._keepalive.start(max(MIN_PING_INTERVAL_MS, int(idle_s * 1000 / 3)))
                self._set_state(ONLINE)
                announce.emit(reply)
            done(reply)

        self.request("login", {**fields, "device": self.device}, finished)

    def _held(self) -> None:
        self._attempt = 0

    def _ping(self) -> None:
        def answered(reply: dict[str, Any]) -> None:
            if reply.get("ok") is False and reply["error"]["code"] == ErrorCode.TIMEOUT:
                self.drop_connection()

        self.request("ping", {}, answered)

    def _schedule_reconnect(self) -> None:
        if self._reconnect_timer.isActive():
            return
        self._set_state(RECONNECTING)
        delay = BACKOFF_S[min(self._attempt, len(BACKOFF_S) - 1)]
        self._attempt += 1
        self._reconnect_timer.start(int(delay * 1000 * random.uniform(0.8, 1.2)))

    def _reconnect(self) -> None:
        if not self._wanted or self.token is None:
            return
        token = self.token

        def resume() -> None:
            def finished(reply: dict[str, Any]) -> None:
                if reply.get("ok"):
                    return
                code = reply["error"]["code"]
                if code in RETRYABLE:
                    self._schedule_reconnect()
                else:  # the token was revoked or expired
                    self._wanted = False
                    self._drop_socket()
                    self._set_state(DISCONNECTED)
                    self.sessionEnded.emit(self._closed_because or reply["error"]["message"])

            self._login({"token": token}, finished, self.resumed)

        self._on_connected = [resume]
        self._connect_socket()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

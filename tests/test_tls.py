"""The edge's TLS port: the same protocol inside TLS 1.2+, with the configured
certificate; clients verify it; plain TCP or a wrong CA gets nowhere."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys

import pytest
from tls import make_certificates

from wire import WireClient


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_port_speaks_the_protocol(make_stack, sqlite_url, tmp_path):
    certs = make_certificates(tmp_path / "tls")
    stack = make_stack(sqlite_url, **certs.settings())
    with (
        WireClient(certs.port, tls_ca=str(certs.ca)) as secure,
        WireClient(stack.port) as plain,
    ):
        assert secure.sock.version() in ("TLSv1.2", "TLSv1.3")
        secure.register_and_login("tess")
        plain.register_and_login("pete")
        secure.call("room.send", room="lobby", text="over TLS")
        assert plain.event("message")["text"] == "over TLS"
        plain.call("room.send", room="lobby", text="over TCP")
        assert secure.event("message")["text"] == "over TCP"

    # Verifying against another CA fails: the client refuses the server.
    other = make_certificates(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        WireClient(certs.port, tls_ca=str(other.ca))
    # A name the certificate does not carry fails too.
    with pytest.raises(ssl.SSLCertVerificationError):
        context = ssl.create_default_context(cafile=str(certs.ca))
        with socket.create_connection(("127.0.0.1", certs.port), timeout=5) as raw:
            context.wrap_socket(raw, server_hostname="chat.example.org")
    # Plain frames sent to the TLS port are not a handshake: the edge closes the socket.
    with socket.create_connection(("127.0.0.1", certs.port), timeout=5) as raw:
        raw.sendall(b'\x00\x00\x00\x0b{"op":"x"}')
        raw.settimeout(5)
        assert raw.recv(100) in (b"",) or raw.recv(100) == b""
    # Old protocol versions are refused.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(certs.ca))
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.minimum_version = ssl.TLSVersion.TLSv1
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", certs.port), timeout=5) as raw,
    ):
        old.wrap_socket(raw, server_hostname="127.0.0.1")


def test_edge_refuses_to_start_with_a_bad_certificate(tmp_path, sqlite_url):
    from harness import Stack

    stack = Stack(
        tmp_path,
        sqlite_url,
        tls_port=1,
        tls_cert_file=tmp_path / "missing.pem",
        tls_key_file=tmp_path / "missing.key",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "services.tcp_edge"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "cannot use CHAT_TLS_CERT_FILE" in proc.stderr + proc.stdout

"""Certificates for the TLS tests, made by the script operators use."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path
    port: int

    def settings(self) -> dict[str, object]:
        return {"tls_port": self.port, "tls_cert_file": self.cert, "tls_key_file": self.key}


def make_certificates(directory: Path, *names: str) -> Certificates:
    subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "make-tls-cert.sh"),
            str(directory),
            *(names or ("localhost", "127.0.0.1")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificates(
        directory / "ca.pem", directory / "server.pem", directory / "server.key", free_port()
    )

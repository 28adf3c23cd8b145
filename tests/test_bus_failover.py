"""No single bus (issue #18): with two buses, either can die, hang or restart under a
steady stream of messages, and no acknowledged message is lost or seen twice.

The stack runs two buses (CHAT_BUS_HOSTS) and two edges; the sender sits on one edge,
the readers on the other, so every request and every event crosses a bus. The sender
sends one message at a time and, as a client does, sends it again with the same
client_id when the answer is service_unavailable or does not come (the documented retry,
docs/architecture.md). The checks, over every reader's view:
- every acknowledged message was delivered live exactly once (each event reaches an
  edge through both buses; the edge keeps the first copy), in the order sent;
- sync from the start returns each acknowledged message once, in seq order;
- a retried send stored its message once.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from typing import Any

import pytest

from chatroom.config import BUS_PORT_OFFSETS
from chatroom.health import Unhealthy, check_bus

from acked import REQUEST_TIMEOUT_MS, SEND_ATTEMPTS, check_view, send_with_retry
from wire import WireClient, wait_until


def established(base: int) -> int:
    """TCP connections established to a bus's ports (base .. base + its offsets)."""
    ports = [base + offset for offset in BUS_PORT_OFFSETS.values()]
    total = 0
    for port in ports:
        out = subprocess.run(
            ["ss", "-Htn", "state", "established", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        total += len(out.splitlines())
    return total


def wait_bus_back(stack, name: str, base: int, survivor_base: int) -> None:
    """Until the restarted bus answers and every process has reconnected to it (as
    many connections as the bus that stayed up has)."""
    settings = dataclasses.replace(stack.settings, bus_port_base=base, bus_hosts="")

    def answers() -> bool:
        try:
            check_bus(settings, 1.0)
        except Unhealthy:
            return False
        return True

    wait_until(answers, 30, f"{name} answering")
    wait_until(
        lambda: established(base) >= established(survivor_base), 30, f"everyone back on {name}"
    )


@pytest.mark.parametrize("failure", ["kill", "hang"])
def test_either_bus_can_fail_under_load_without_loss_or_duplicates(make_stack, db_url, failure):
    stack = make_stack(db_url, edges=2, buses=2, request_timeout_ms=REQUEST_TIMEOUT_MS)
    first, second = stack.bus_bases
    with (
        WireClient(stack.edge_ports[0]) as sender,
        WireClient(stack.edge_ports[1]) as bob,
        WireClient(stack.edge_ports[1]) as cy,
    ):
        sender.register_and_login("sender")
        bob.register_and_login("bob")
        cy.register_and_login("cy")
        acked: list[dict[str, Any]] = []
        slowest = 0.0
        resent = 0

        def send(count: int) -> None:
            nonlocal slowest, resent
            for _ in range(count):
                message, attempts, took = send_with_retry(sender, len(acked))
                acked.append(message)
                resent += attempts - 1
                slowest = max(slowest, took)

        send(30)
        if failure == "kill":
            stack.kill("bus")  # SIGKILL: its sockets close at once
            send(30)
            stack.restart("bus")
            wait_bus_back(stack, "bus", first, second)
            stack.kill("bus#1")
            send(30)
        else:
            # A hung bus (a host that stops answering, its TCP still open): requests
            # sent its way wait until the heartbeat gives up on it (3 s); its copies of
            # events come out late when it resumes, and must be dropped as copies.
            stack.kill("bus", signal.SIGSTOP)
            try:
                send(30)
            finally:
                stack.kill("bus", signal.SIGCONT)
            send(30)
        for reader in (bob, cy):
            check_view(reader, acked)
    # The documented retry bounds a send: a few edge timeouts at most.
    assert slowest < SEND_ATTEMPTS * (REQUEST_TIMEOUT_MS / 1000 + 2)
    print(f"{failure}: {len(acked)} acknowledged, {resent} resends, slowest {slowest:.2f} s")

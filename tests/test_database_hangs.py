"""A database that hangs (its server frozen with SIGSTOP: connections stay open, queries
never return), on a MariaDB of the test's own (`private_db`, tests/conftest.py): requests
queued behind it are dropped, not carried out late, and orchestrators see replicas
unready but alive."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatroom.localstack import Stack, free_port

from wire import WireClient, wait_until


@pytest.mark.mysql
def test_requests_whose_deadline_passed_in_the_queue_are_not_carried_out(private_db, tmp_path):
    """While the database hangs, the one worker thread of auth hangs in the first
    `register` and the others wait in the pool's queue; the edge answers all of them
    service_unavailable at the deadline. When the database is back, the queued ones
    must not create accounts their users were told were not created."""
    db, url = private_db
    stack = Stack(tmp_path, url, request_timeout_ms=1500, worker_threads=1, log_level="INFO")
    clients: list[WireClient] = []
    try:
        stack.start()
        clients = [WireClient(stack.edge_ports[0], timeout=20) for _ in range(4)]
        clients.pop().register_and_login("before")  # the stack works
        db.pause()
        try:
            sent = []
            for index, client in enumerate(clients):
                request_id = 100 + index
                client.send(
                    {
                        "op": "register",
                        "id": request_id,
                        "username": f"queued{index}",
                        "password": "correct horse",
                    }
                )
                sent.append(request_id)
            for client, request_id in zip(clients, sent, strict=True):
                reply = client.next_matching(lambda f, r=request_id: f.get("id") == r, 20)
                assert reply["error"]["code"] == "service_unavailable", reply
        finally:
            db.resume()
        # The first to reach auth held the thread (it may still finish: it started in
        # time); the two behind it are dropped, whichever they are.
        wait_until(
            lambda: stack.logs("auth").count("its deadline passed in the queue") >= 2,
            30,
            "queued registrations dropped",
        )
        created = []
        for index, client in enumerate(clients):
            reply = client.request("register", username=f"queued{index}", password="correct horse")
            if not reply["ok"]:
                assert reply["error"]["code"] == "username_taken", reply
                created.append(index)
        assert len(created) <= 1, f"accounts created after their deadline: {created}"
    except BaseException:
        print(stack.logs()[-20000:])
        raise
    finally:
        for client in clients:
            client.close()
        stack.stop()


@pytest.mark.mysql
def test_a_hung_database_makes_replicas_unready_but_not_dead(private_db, tmp_path):
    """What orchestrators restart on (`chatroom health <svc> --live`, Swarm and the
    Kubernetes liveness probe) must not depend on the database; what takes a replica out
    of service (`chatroom health <svc>`, readiness) must."""
    db, url = private_db
    stack = Stack(tmp_path, url, request_timeout_ms=1500, log_level="INFO")
    health_port = free_port()
    try:
        stack.start()
        stack.start_service("social#1", dict(stack.env, CHAT_HEALTH_PORT=str(health_port)))
        env = dict(stack.env, CHAT_HEALTH_PORT=str(health_port))

        def health(*flags: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "chatroom.cli", "health", "social", "--timeout=3", *flags],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )

        wait_until(lambda: health().returncode == 0, 30, "the new replica ready")
        assert health("--live").returncode == 0
        db.pause()
        try:
            ready, live = health(), health("--live")
        finally:
            db.resume()
        assert ready.returncode == 1 and "unhealthy" in ready.stderr, ready
        assert live.returncode == 0 and "healthy" in live.stdout, live
        wait_until(lambda: health().returncode == 0, 30, "ready again once the database is back")
    except BaseException:
        print(stack.logs()[-20000:])
        raise
    finally:
        stack.stop()

"""Failed-login throttles (hardening issue): a password attempt reserves its tokens in
the database before the password is hashed, so parallel guesses cannot overdraw a
bucket, even spread over auth replicas; the owner is not locked out by an attacker who
keeps the account's buckets empty; the attacker's own address is. IPv6 addresses count
by their /64."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import insert

from chatroom.config_env import load
from chatroom.errors import ServiceError
from chatroom.storage.db import make_engine, now_ms
from chatroom.storage.migrate import upgrade
from chatroom.storage.schema import sessions, users
from services.auth.store import AuthStore
from services.auth.throttle import Throttle, known_address

from wire import WireClient

PASSWORD = "the real password"
GUESSES = 24


def _guess_in_parallel(port: int, username: str, source: str, n: int) -> Counter:
    """n wrong passwords sent at once, each on a connection of its own (a connection
    runs one login at a time), all from one address; the reply codes counted."""
    attackers = [WireClient(port, source=source, timeout=60) for _ in range(n)]
    try:
        for i, attacker in enumerate(attackers):
            attacker.send({"op": "login", "id": i, "username": username, "password": f"guess{i}"})
        replies = [
            a.next_matching(lambda f, i=i: f.get("id") == i) for i, a in enumerate(attackers)
        ]
    finally:
        for attacker in attackers:
            attacker.close()
    assert not any(r["ok"] for r in replies)
    return Counter(r["error"]["code"] for r in replies)


def _password_checks(stack) -> int:
    """Wrong passwords the auth replicas hashed, by their log lines."""
    logs = "".join(stack.logs(name) for name in stack.procs if name.startswith("auth"))
    return logs.count("bad credentials")


def test_parallel_guesses_get_at_most_the_bucket(make_stack, db_url):
    """24 wrong passwords at once from one address, over two auth replicas: at most 3
    (the bucket) are hashed; the rest are refused up front, without a password check."""
    stack = make_stack(
        db_url,
        rate_login_failed_account_ip="3/15m",
        rate_login_failed_ip="3/15m",
        worker_threads=8,
        # A hash slow enough (~50 ms) that the guesses overlap, as they do in production.
        argon2_memory_kib=32768,
        argon2_time_cost=2,
        request_timeout_ms=20000,
    )
    stack.start_service("auth#1")
    stack.wait_healthy(("auth",))
    with WireClient(stack.port, source="127.0.0.2") as owner:
        owner.call("register", username="victim", password=PASSWORD)

    codes = _guess_in_parallel(stack.port, "victim", "127.0.0.1", GUESSES)
    print(f"\n{GUESSES} parallel guesses: {dict(codes)}, {_password_checks(stack)} hashed")
    assert codes["bad_credentials"] + codes["rate_limited"] == GUESSES, codes
    assert 1 <= codes["bad_credentials"] <= 3, codes
    assert _password_checks(stack) == codes["bad_credentials"]


def test_attacker_cannot_lock_the_owner_out(make_stack, db_url):
    """An attacker hammering an account locks only their own address out: the owner
    gets in from elsewhere. Guessing spread over many addresses empties the account's
    bucket, which then slows down new addresses only: the owner's usual address and
    their session token still work."""
    stack = make_stack(
        db_url,
        rate_login_failed_account_ip="3/15m",
        rate_login_failed_ip="5/15m",
        rate_login_failed_account="4/15m",
    )
    with WireClient(stack.port, source="127.0.0.2") as owner:
        owner.call("register", username="victim", password=PASSWORD)
        token = owner.login("victim", PASSWORD)["token"]  # 127.0.0.2 is now known

    codes = _guess_in_parallel(stack.port, "victim", "127.0.0.1", GUESSES)
    assert codes["bad_credentials"] == 3 and codes["rate_limited"] == GUESSES - 3, codes
    with WireClient(stack.port, source="127.0.0.1") as attacker:
        err = attacker.error_of("login", username="victim", password=PASSWORD)
        assert err["code"] == "rate_limited" and err["retry_after_ms"] > 0
        assert "from your address" in err["message"]
    with WireClient(stack.port, source="127.0.0.3") as new_place:  # a new address
        assert new_place.login("victim", PASSWORD)["user"]["username"] == "victim"

    # More addresses join in: the account's bucket (4) runs dry.
    for source in ("127.0.0.4", "127.0.0.5"):
        _guess_in_parallel(stack.port, "victim", source, 3)
    with WireClient(stack.port, source="127.0.0.6") as unknown:
        err = unknown.error_of("login", username="victim", password=PASSWORD)
        assert err["code"] == "rate_limited" and "for this account" in err["message"]
    with WireClient(stack.port, source="127.0.0.2") as owner:
        assert owner.login("victim", PASSWORD)["user"]["username"] == "victim"
    with WireClient(stack.port, source="127.0.0.7") as phone:
        assert phone.call("login", token=token)["user"]["username"] == "victim"
    assert "guess1" not in stack.logs()  # passwords are never logged


def test_right_passwords_do_not_use_up_the_buckets(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, rate_login_failed_account_ip="2/15m")
    with WireClient(stack.port) as c:
        c.call("register", username="often", password=PASSWORD)
        for _ in range(5):
            c.login("often", PASSWORD)
            c.call("logout")
        assert c.error_of("login", username="often", password="wrong")["code"] == (
            "bad_credentials"
        )


def test_ipv6_addresses_count_by_their_64(db_url):
    """One /64 is one address to the buckets: hopping inside it gains no guesses."""
    settings = load(
        {
            "CHAT_DB_URL": db_url,
            "CHAT_RATE_LOGIN_FAILED_ACCOUNT_IP": "2/15m",
            "CHAT_RATE_LOGIN_FAILED_IP": "3/15m",
            "CHAT_RATE_LOGIN_FAILED_ACCOUNT": "off",
        }
    )
    engine = make_engine(settings)
    upgrade(engine)
    store = AuthStore(engine)
    throttle = Throttle(store.buckets, settings)
    throttle.reserve_login("2001:db8::1", "victim", known=False)
    throttle.reserve_login("2001:db8::ffff:2", "victim", known=False)
    with pytest.raises(ServiceError) as refused:
        throttle.reserve_login("2001:db8::3", "victim", known=False)
    assert refused.value.code == "rate_limited"
    throttle.reserve_login("2001:db8::4", "bystander", known=False)  # the /64's 3rd
    with pytest.raises(ServiceError):
        throttle.reserve_login("2001:db8::5", "someone", known=False)
    throttle.reserve_login("2001:db8:0:1::1", "victim", known=False)  # the next /64
    with engine.begin() as conn:
        user = dict(username="victim", username_key="victim", password_hash="-", created_at=0)
        conn.execute(insert(users).values(id=1, disabled=False, **user))
        conn.execute(
            insert(sessions).values(
                user_id=1,
                token_hash="x" * 64,
                created_at=now_ms(),
                last_used_at=now_ms(),
                expires_at=now_ms() + 1000,
                ip="2001:db8::1",
            )
        )
    _, recent = store.account_for_login("victim", 0)
    assert known_address(recent, "2001:db8::99")
    assert not known_address(recent, "2001:db8:0:1::1")
    engine.dispose()

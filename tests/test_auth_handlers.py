"""Auth's handlers in-process, against a store on a temp SQLite file (no ZeroMQ):
register, log in (password and resume token), wrong passwords, logout, the operator
ops, and bad input as typed errors. The end-to-end account tests (test_accounts.py,
test_admin.py, test_login_throttle.py) go through the edge and the bus."""

from __future__ import annotations

import pytest

from chatroom.bus_contract import user_topic
from chatroom.errors import ServiceError
from services.auth.handlers import AuthHandlers
from services.auth.store import AuthStore

from inproc import as_user, call, events_to, sqlite_engine, sqlite_settings

PASSWORD = "correct horse battery"
CHEAP_HASHING = {"argon2_time_cost": "1", "argon2_memory_kib": "1024", "argon2_parallelism": "1"}


@pytest.fixture
def auth(tmp_path):
    settings = sqlite_settings(tmp_path, **CHEAP_HASHING)
    engine = sqlite_engine(settings)
    yield AuthHandlers(AuthStore(engine), settings)
    engine.dispose()


def _refused(handler, ctx, args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(handler, ctx, args)
    return refused.value


def _register(auth: AuthHandlers, name: str = "Alice") -> dict:
    return call(auth.register, as_user(None), {"username": name, "password": PASSWORD})


def test_register_then_log_in(auth):
    user = _register(auth)["user"]
    assert user["username"] == "Alice"
    # Usernames compare by their key: any case logs in to the one account.
    login = call(auth.login, as_user(None), {"username": "ALICE", "password": PASSWORD})
    assert login["user"] == user
    assert login["token"] and login["session_id"] and login["expires_at"]


def test_a_username_is_taken_whatever_its_case(auth):
    _register(auth)
    assert _refused(
        auth.register, as_user(None), {"username": "alice", "password": PASSWORD}
    ).code == ("username_taken")


def test_wrong_password_and_unknown_user_get_one_answer(auth):
    _register(auth)
    wrong = _refused(auth.login, as_user(None), {"username": "Alice", "password": "nope nope"})
    unknown = _refused(auth.login, as_user(None), {"username": "Bob", "password": PASSWORD})
    assert wrong.code == unknown.code == "bad_credentials"
    assert wrong.message == unknown.message


def test_a_token_resumes_until_logout(auth):
    user = _register(auth)["user"]
    login = call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})
    resumed = call(auth.login, as_user(None), {"token": login["token"]})
    assert (resumed["user"], resumed["session_id"]) == (user, login["session_id"])
    me = as_user(user["id"], "Alice", session_id=login["session_id"])
    assert call(auth.logout, me, {}) == {}
    kick = events_to(me, user_topic(user["id"]))[0]
    assert kick["code"] == "logged_out" and kick["_session"] == login["session_id"]
    assert _refused(auth.login, as_user(None), {"token": login["token"]}).code == "bad_credentials"


def test_disabled_account_cannot_log_in_and_loses_its_sessions(auth):
    user = _register(auth)["user"]
    login = call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})
    operator = as_user(None)
    assert call(auth.admin.disable, operator, {"username": "alice"}) == {
        "user_id": user["id"],
        "sessions_ended": 1,
    }
    assert events_to(operator, user_topic(user["id"]))[0]["code"] == "account_disabled"
    args = {"username": "Alice", "password": PASSWORD}
    assert _refused(auth.login, as_user(None), args).code == "account_disabled"
    assert _refused(auth.login, as_user(None), {"token": login["token"]}).code == "bad_credentials"
    call(auth.admin.enable, operator, {"username": "Alice"})
    assert call(auth.login, as_user(None), args)["user"] == user


def test_operators_list_and_reset(auth):
    _register(auth, "Alice")
    _register(auth, "Bob")
    listed = call(auth.admin.list_users, as_user(None), {"match": "b"})["users"]
    assert [u["username"] for u in listed] == ["Bob"]
    new = "a brand new password"
    call(auth.admin.reset_password, as_user(None), {"username": "Bob", "password": new})
    assert call(auth.login, as_user(None), {"username": "Bob", "password": new})
    missing = _refused(auth.admin.kick, as_user(None), {"username": "Carol"})
    assert missing.code == "not_found"


def test_export_then_erase_in_steps(auth):
    user = _register(auth)["user"]
    login = call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})
    operator = as_user(None)
    exported = call(auth.admin.export, operator, {"username": "ALICE"})
    assert exported["account"]["username"] == "Alice"
    assert [s["ip"] for s in exported["sessions"]] == ["192.0.2.1"]
    assert {b["kind"] for b in exported["failed_logins"]} == {
        "login-failed-pair",
        "login-failed-user",
    }
    assert "hash" not in str(exported) and "token" not in str(exported)  # no secrets

    # The first step: marked, disabled, tokens revoked, connections kicked.
    begun = call(auth.admin.erase, operator, {"username": "alice"})
    assert begun == {"user_id": user["id"], "sessions_ended": 1, "erased_before": False}
    assert events_to(operator, user_topic(user["id"]))[0]["code"] == "account_disabled"
    args = {"username": "Alice", "password": PASSWORD}
    wrong = _refused(auth.login, as_user(None), args)
    unknown = _refused(auth.login, as_user(None), {**args, "username": "nobody"})
    assert (wrong.code, wrong.message) == (unknown.code, unknown.message)
    assert _refused(auth.login, as_user(None), {"token": login["token"]}).code == "bad_credentials"
    for op in (auth.admin.export, auth.admin.kick, auth.admin.enable):
        assert _refused(op, operator, {"username": "alice"}).code == "not_found"
    assert call(auth.admin.list_users, operator, {})["users"] == []

    # The last step: sessions and buckets gone, the row the tombstone; safe again.
    done = call(auth.admin.erase_finish, operator, {"user_id": user["id"]})
    assert done == {"user_id": user["id"], "sessions_deleted": 1, "buckets_deleted": 2}
    again = call(auth.admin.erase, operator, {"username": "alice"})
    assert again["erased_before"] is True and again["sessions_ended"] == 0
    assert call(auth.admin.erase_finish, operator, {"user_id": user["id"]})["sessions_deleted"] == 0
    # The name stays taken: nobody can pose as the author of the old messages.
    assert _refused(auth.register, as_user(None), args).code == "username_taken"


def test_erase_finish_only_after_erase(auth):
    user = _register(auth)["user"]
    refused = _refused(auth.admin.erase_finish, as_user(None), {"user_id": user["id"]})
    assert refused.code == "not_found"
    assert call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})


@pytest.mark.parametrize(
    ("op", "args", "code"),
    [
        ("register", {"username": "Alice", "password": "short"}, "invalid_password"),
        ("register", {"username": "a\u200bb", "password": PASSWORD}, "invalid_username"),
        ("login", {"username": "Alice"}, "bad_request"),
        ("logout", {}, "not_authenticated"),
    ],
)
def test_bad_input_is_a_typed_error(auth, op, args, code):
    assert _refused(getattr(auth, op), as_user(None), args).code == code


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("list_users", {"limit": 0}),
        ("list_users", {"match": 5}),
        ("kick", {"username": " "}),
        ("reset_password", {"username": "Alice"}),
        ("export", {"username": ""}),
        ("erase", {}),
        ("erase_finish", {"user_id": "1"}),
        ("erase_finish", {"user_id": True}),
        ("erase_finish", {"user_id": 0}),
    ],
)
def test_bad_operator_input_is_bad_request(auth, op, args):
    assert _refused(getattr(auth.admin, op), as_user(None), args).code == "bad_request"


def test_failed_logins_are_throttled_per_account_and_address(tmp_path):
    settings = sqlite_settings(
        tmp_path, rate_login_failed_account_ip="2/15m", rate_login_failed_ip="off", **CHEAP_HASHING
    )
    engine = sqlite_engine(settings)
    auth = AuthHandlers(AuthStore(engine), settings)
    _register(auth)
    guess = {"username": "Alice", "password": "a wrong guess"}
    for _ in range(2):
        assert _refused(auth.login, as_user(None), guess).code == "bad_credentials"
    throttled = _refused(auth.login, as_user(None), guess)
    assert throttled.code == "rate_limited" and throttled.extra["retry_after_ms"] > 0
    other_address = as_user(None, ip="198.51.100.7")
    assert call(auth.login, other_address, {"username": "Alice", "password": PASSWORD})
    engine.dispose()


def test_an_edges_report_of_sessions_in_use(auth):
    """sessions.used (tcp_edge/session_use.py) moves last_used_at of live sessions only;
    anything but a bounded list of positive ids is bad_request, nothing written."""
    _register(auth)
    login = call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})
    other = call(auth.login, as_user(None), {"username": "Alice", "password": PASSWORD})
    used = auth.own.sessions_used
    edge = as_user(None)
    call(auth.logout, as_user(1, "Alice", session_id=other["session_id"]), {})
    ids = [login["session_id"], other["session_id"], 10**9]
    assert call(used, edge, {"sessions": ids}) == {"moved": 1}  # the logged-out one stays
    for bad in (None, [], "1", [0], [-1], [1.5], ["1"], [True], [2**63], [1] * 2001):
        assert _refused(used, edge, {"sessions": bad}).code == "bad_request", bad

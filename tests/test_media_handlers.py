"""Media's handlers in-process, against a store on a temp SQLite file (no ZeroMQ):
setting and fetching avatars, who may see which picture, bad input as typed errors.
The end-to-end avatar tests (test_avatars.py) go through the edge and the bus."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from sqlalchemy import insert

from chatroom.bus_contract import user_topic
from chatroom.errors import ServiceError
from chatroom.storage.schema import friendships
from services.media.handlers import MediaHandlers
from services.media.store import MediaStore

from images import decode, png
from inproc import (
    add_users,
    as_user,
    call,
    events_to,
    mark_erased,
    sqlite_engine,
    sqlite_settings,
)


def _media(tmp_path, **env: str) -> SimpleNamespace:
    """The handlers, and alice and bob (friends) and carol (a stranger to both)."""
    settings = sqlite_settings(tmp_path, **env)
    engine = sqlite_engine(settings)
    alice, bob, carol = add_users(engine, "alice", "bob", "carol")
    with engine.begin() as conn:
        conn.execute(
            insert(friendships),
            [
                {"user_id": 1, "friend_id": 2, "since": 0},
                {"user_id": 2, "friend_id": 1, "since": 0},
            ],
        )
    handlers = MediaHandlers(MediaStore(engine), settings)
    return SimpleNamespace(handlers=handlers, engine=engine, alice=alice, bob=bob, carol=carol)


@pytest.fixture
def w(tmp_path):
    world = _media(tmp_path)
    yield world
    world.handlers.decodes.close()
    world.engine.dispose()


def _upload(media: MediaHandlers, ctx, picture: bytes) -> dict:
    return call(media.avatar_set, ctx, {"image": base64.b64encode(picture).decode()})


def _refused(handler, ctx, args) -> str:
    with pytest.raises(ServiceError) as refused:
        call(handler, ctx, args)
    return refused.value.code


def test_set_then_get_by_owner_and_friend_not_stranger(w):
    result = _upload(w.handlers, w.alice, png(300, 200))
    told = {topic for topic, _ in w.alice.events}
    assert told == {user_topic(1), user_topic(2)}  # herself (other devices) and her friend
    assert events_to(w.alice, user_topic(2))[0]["hash"] == result["hash"]
    for ctx in (w.alice, w.bob):
        got = call(w.handlers.avatar_get, ctx, {"hash": result["hash"], "size": 64})
        assert got["mime"] == "image/png"
        assert decode(base64.b64decode(got["image"])).size == (64, 64)
    assert _refused(w.handlers.avatar_get, w.carol, {"hash": result["hash"]}) == "not_found"


def test_the_default_picture_is_anyones(w):
    got = call(w.handlers.avatar_get, w.carol, {"hash": "default"})
    assert got["hash"] == w.handlers.default.hash


def test_unknown_hash_is_the_same_answer_as_a_hidden_one(w):
    assert _refused(w.handlers.avatar_get, w.alice, {"hash": "0" * 64}) == "not_found"


def test_everyone_visibility_shows_strangers_too(tmp_path):
    world = _media(tmp_path, avatar_visibility="everyone")
    result = _upload(world.handlers, world.alice, png())
    assert call(world.handlers.avatar_get, world.carol, {"hash": result["hash"]})["hash"]
    world.handlers.decodes.close()
    world.engine.dispose()


@pytest.mark.parametrize(
    ("op", "args", "code"),
    [
        ("avatar_set", {"image": "not base64!"}, "bad_request"),
        ("avatar_set", {"image": base64.b64encode(b"not a picture").decode()}, "invalid_image"),
        ("avatar_get", {"hash": "default", "size": 33}, "bad_request"),
    ],
)
def test_bad_input_is_a_typed_error(w, op, args, code):
    assert _refused(getattr(w.handlers, op), w.alice, args) == code
    assert not w.alice.events


def test_login_first(w):
    assert _refused(w.handlers.avatar_get, as_user(None), {"hash": "default"}) == (
        "not_authenticated"
    )


def test_export_then_erase_the_avatar(w):
    mine = _upload(w.handlers, w.alice, png(300, 200))["hash"]
    shared = _upload(w.handlers, w.bob, png(300, 200, color=(0, 90, 200)))["hash"]
    _upload(w.handlers, w.carol, png(300, 200, color=(0, 90, 200)))  # the same picture
    admin = as_user(None)
    exported = call(w.handlers.admin_export, admin, {"user_id": 1})["avatar"]
    assert exported["hash"] == mine
    assert decode(base64.b64decode(exported["pngs"]["64"])).size == (64, 64)
    assert call(w.handlers.admin_export, admin, {"user_id": 3})["avatar"]["hash"] == shared

    assert _refused(w.handlers.admin_erase, admin, {"user_id": 1}) == "conflict"
    for user_id in (1, 2):
        mark_erased(w.engine, user_id)
    done = call(w.handlers.admin_erase, admin, {"user_id": 1})
    assert done["avatars_deleted"] == 1 and done["images_deleted"] > 0
    assert _refused(w.handlers.avatar_get, w.alice, {"hash": mine}) == "not_found"
    # A picture someone else still uses stays.
    assert call(w.handlers.admin_erase, admin, {"user_id": 2})["images_deleted"] == 0
    assert call(w.handlers.avatar_get, w.carol, {"hash": shared})["hash"] == shared
    # Again: nothing left to do. An erased user has nothing to export.
    assert call(w.handlers.admin_erase, admin, {"user_id": 1})["avatars_deleted"] == 0
    assert _refused(w.handlers.admin_export, admin, {"user_id": 1}) == "not_found"
    assert _refused(w.handlers.admin_export, admin, {"user_id": 99}) == "not_found"
    assert _refused(w.handlers.admin_erase, admin, {"user_id": "1"}) == "bad_request"

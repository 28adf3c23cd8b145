"""Media's handlers in-process, against a store on a temp SQLite file (no ZeroMQ):
setting and fetching avatars, who may see which picture, bad input as typed errors.
The end-to-end avatar tests (test_avatars.py) go through the edge and the bus."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import insert

from chatroom.bus_contract import user_topic
from chatroom.errors import ServiceError
from chatroom.storage.schema import friendships, users
from services.media.handlers import MediaHandlers
from services.media.store import MediaStore

from images import decode, png
from inproc import as_user, call, events_to, sqlite_engine, sqlite_settings

ALICE, BOB, CAROL = as_user(1, "alice"), as_user(2, "bob"), as_user(3, "carol")


@pytest.fixture
def media(tmp_path):
    settings = sqlite_settings(tmp_path)
    engine = sqlite_engine(settings)
    _add_users(engine, ALICE, BOB, CAROL)
    with engine.begin() as conn:
        conn.execute(
            insert(friendships),
            [
                {"user_id": 1, "friend_id": 2, "since": 0},
                {"user_id": 2, "friend_id": 1, "since": 0},
            ],
        )
    handlers = MediaHandlers(MediaStore(engine), settings)
    yield handlers
    handlers.decodes.close()
    engine.dispose()


def _add_users(engine, *people) -> None:
    with engine.begin() as conn:
        for ctx in people:
            name = ctx.username
            conn.execute(
                insert(users).values(
                    id=ctx.user_id,
                    username=name,
                    username_key=name,
                    password_hash="-",
                    disabled=False,
                    created_at=0,
                )
            )


def _upload(media: MediaHandlers, ctx, picture: bytes) -> dict:
    return call(media.avatar_set, ctx, {"image": base64.b64encode(picture).decode()})


def test_set_then_get_by_owner_and_friend_not_stranger(media):
    result = _upload(media, ALICE, png(300, 200))
    told = {topic for topic, _ in ALICE.events}
    assert told == {user_topic(1), user_topic(2)}  # herself (other devices) and her friend
    assert events_to(ALICE, user_topic(2))[0]["hash"] == result["hash"]
    for ctx in (ALICE, BOB):
        got = call(media.avatar_get, ctx, {"hash": result["hash"], "size": 64})
        assert got["mime"] == "image/png"
        assert decode(base64.b64decode(got["image"])).size == (64, 64)
    with pytest.raises(ServiceError) as refused:
        call(media.avatar_get, CAROL, {"hash": result["hash"]})
    assert refused.value.code == "not_found"


def test_the_default_picture_is_anyones(media):
    got = call(media.avatar_get, CAROL, {"hash": "default"})
    assert got["hash"] == media.default.hash


def test_unknown_hash_is_the_same_answer_as_a_hidden_one(media):
    with pytest.raises(ServiceError) as refused:
        call(media.avatar_get, ALICE, {"hash": "0" * 64})
    assert refused.value.code == "not_found"


def test_everyone_visibility_shows_strangers_too(tmp_path):
    settings = sqlite_settings(tmp_path, avatar_visibility="everyone")
    engine = sqlite_engine(settings)
    _add_users(engine, ALICE)
    media = MediaHandlers(MediaStore(engine), settings)
    result = _upload(media, ALICE, png())
    assert call(media.avatar_get, as_user(9, "z"), {"hash": result["hash"]})["hash"]
    media.decodes.close()
    engine.dispose()


@pytest.mark.parametrize(
    ("op", "args", "code"),
    [
        ("avatar_set", {"image": "not base64!"}, "bad_request"),
        ("avatar_set", {"image": base64.b64encode(b"not a picture").decode()}, "invalid_image"),
        ("avatar_get", {"hash": "default", "size": 33}, "bad_request"),
    ],
)
def test_bad_input_is_a_typed_error(media, op, args, code):
    with pytest.raises(ServiceError) as refused:
        call(getattr(media, op), ALICE, args)
    assert refused.value.code == code
    assert not ALICE.events


def test_login_first(media):
    with pytest.raises(ServiceError) as refused:
        call(media.avatar_get, as_user(None), {"hash": "default"})
    assert refused.value.code == "not_authenticated"

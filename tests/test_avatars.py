"""Avatars through the real media service."""

from __future__ import annotations

import base64

import pytest

import images
from wire import befriend, users


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_avatar_change_reaches_friends_only(stack):
    with users(stack, "amy", "bob", "cyd") as (amy, bob, cyd):
        befriend(amy, bob)
        assert amy.call("friend.list")["friends"][0]["avatar"] is None  # default
        default = base64.b64decode(bob.call("avatar.get", hash="default")["image"])
        assert images.decode(default).size == (256, 256)

        result = amy.call("avatar.set", image=b64(images.png(300, 200)))
        pushed = bob.event("avatar")
        assert pushed["user"]["username"] == "amy" and pushed["hash"] == result["hash"]
        assert amy.event("avatar")["hash"] == result["hash"]  # her own session too
        cyd.no_event("avatar")
        assert bob.call("friend.list")["friends"][0]["avatar"] == result["hash"]
        for size in (256, 64):
            got = bob.call("avatar.get", hash=result["hash"], size=size)
            image = images.decode(base64.b64decode(got["image"]))
            assert (image.format, image.size) == ("PNG", (size, size))
        assert bob.error_of("avatar.get", hash="0" * 64)["code"] == "not_found"
        assert bob.error_of("avatar.get", hash=result["hash"], size=100)["code"] == "bad_request"


def test_exif_is_stripped(stack):
    with users(stack, "dee") as (dee,):
        result = dee.call("avatar.set", image=b64(images.jpeg_with_exif()))
        data = base64.b64decode(dee.call("avatar.get", hash=result["hash"])["image"])
        assert b"SecretCam" not in data
        assert not images.decode(data).getexif()


BAD_UPLOADS = {
    "text_renamed_png": b"hello, I am not an image\n" * 10,
    "truncated_png": images.png(400, 400)[:300],
    "png_bomb_20000x20000": images.png_bomb(20_000),
    "oversized": b"\x89PNG\r\n\x1a\n" + b"\x00" * (512 * 1024 + 1),
    "empty": b"",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>',
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_clearly(make_stack, sqlite_url, name):
    stack = make_stack(sqlite_url)
    with users(stack, "eli") as (eli,):
        err = eli.error_of("avatar.set", image=b64(BAD_UPLOADS[name]))
        assert err["code"] == "invalid_image", err
        assert err["message"]
        assert eli.call("friend.list")["friends"] == []
        # Still works afterwards.
        assert eli.call("avatar.set", image=b64(images.png()))["hash"]


def test_not_base64_is_a_bad_request(stack):
    with users(stack, "flo") as (flo,):
        err = flo.error_of("avatar.set", image="***not base64***")
        assert (err["code"], err["field"]) == ("bad_request", "image")


def test_everyday_avatars_in_every_format(stack):
    with users(stack, "gus") as (gus,):
        for name, data in images.everyday().items():
            result = gus.call("avatar.set", image=b64(data))
            for size in (256, 64):
                got = gus.call("avatar.get", hash=result["hash"], size=size)
                image = images.decode(base64.b64decode(got["image"]))
                assert (image.format, image.size) == ("PNG", (size, size)), name

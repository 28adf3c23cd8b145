"""Hostile avatars against the real media service: bombs are refused before they cost
memory, and one user's flood of uploads neither exhausts media nor holds up others.

Memory is read from the media process itself (/proc/<pid>/status); its high-water mark
is reset (/proc/<pid>/clear_refs) before each measured step.
"""

from __future__ import annotations

import base64
import time

import pytest

from loadtest.measure import reset_peak, status_kib

import images
from wire import users

MIB = 1024
# A refused bomb may cost media a little (the request, Pillow's header parsing), never
# a decoded picture (the smallest bomb here would be 256 MB).
BOMB_GROWTH_BUDGET_KIB = 32 * MIB
# One user's worst uploads, pipelined: the compose limit of the media container.
MEDIA_PEAK_BUDGET_KIB = 512 * MIB


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BOMBS = {
    # name: (upload, a word the refusal must contain)
    "png_20000x20000": (images.png_bomb(20_000), "pixels"),
    "gif_frame_20000x20000_on_a_16x16_screen": (images.gif_bomb(20_000), "pixels"),
    "gif_10000x10000": (images.gif_bomb(10_000, screen=10_000), "pixels"),
    "webp_12000x12000_in_40_bytes": (images.webp_bomb(12_000), "pixels"),
    "webp_5000x5000_in_40_bytes": (images.webp_bomb(5_000), "pixels"),
    "png_ztxt_60_chunks_of_1MiB": (images.png_ztxt_bomb(60), "text"),
    "png_400KiB_of_text": (images.png_huge_text(400 * 1024), "text"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_before_they_cost_memory(make_stack, sqlite_url, name):
    stack = make_stack(sqlite_url)
    media = stack.procs["media"].pid
    upload, reason = BOMBS[name]
    with users(stack, "bo") as (bo,):
        before = status_kib(media, "VmRSS")
        reset_peak(media)
        err = bo.error_of("avatar.set", image=b64(upload))
        assert err["code"] == "invalid_image", err
        assert reason in err["message"], err
        growth = status_kib(media, "VmHWM") - before
        assert growth < BOMB_GROWTH_BUDGET_KIB, f"media grew {growth // MIB} MiB"
        assert bo.call("avatar.set", image=b64(images.png()))["hash"]  # still works


def test_a_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded(make_stack, sqlite_url):
    """Found by an outside recheck: 500 KB of repeated progressive scans at 4096 x 4096
    (within both limits) cost 65 s of CPU in the one decode worker; everyone's avatar.set
    got service_unavailable for two minutes."""
    stack = make_stack(sqlite_url)
    bomb = images.jpeg_scan_bomb()
    assert len(bomb) <= stack.settings.avatar_max_bytes
    with users(stack, "bo", "vi") as (bo, vi):
        start = time.monotonic()
        err = bo.error_of("avatar.set", image=b64(bomb))
        assert err["code"] == "invalid_image", err
        assert "scans" in err["message"], err
        assert vi.call("avatar.set", image=b64(images.png()))["hash"]
        assert time.monotonic() - start < 3
        # An ordinary progressive JPEG (libjpeg's own scan script) is still accepted.
        progressive = images._save(
            images.Image.new("RGB", (640, 480), (9, 90, 200)), "JPEG", progressive=True
        )
        assert vi.call("avatar.set", image=b64(progressive))["hash"]


def test_one_users_upload_flood_neither_exhausts_media_nor_holds_up_others(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    media = stack.procs["media"].pid
    worst = [b64(images.worst_allowed(fmt)) for fmt in images.WORST_FORMATS]
    with users(stack, "mal", "ned") as (mal, ned):
        reset_peak(media)
        flood = list(range(1000, 1012))
        for n in flood:  # pipelined: all sent before any reply
            mal.send({"op": "avatar.set", "id": n, "image": worst[n % len(worst)]})
        # Meanwhile another user fetches and sets an avatar.
        started = time.monotonic()
        ned.call("avatar.get", hash="default")
        get_s = time.monotonic() - started
        started = time.monotonic()
        ned.call("avatar.set", image=b64(images.png()))
        set_s = time.monotonic() - started
        replies = [
            mal.next_matching(lambda f, n=n: f.get("id") == n and "ok" in f, 60) for n in flood
        ]
        peak = status_kib(media, "VmHWM")
    accepted = [r for r in replies if r["ok"]]
    refused = [r["error"] for r in replies if not r["ok"]]
    assert accepted, replies
    # One decode at a time per user: the rest of the pipeline is refused at once.
    assert all(e["code"] == "rate_limited" and e["retry_after_ms"] > 0 for e in refused), refused
    # ned waits for at most one of mal's decodes (~0.3-1 s on a busy machine).
    assert get_s < 1.5, f"avatar.get took {get_s:.1f} s behind the flood"
    assert set_s < 3.0, f"avatar.set took {set_s:.1f} s behind the flood"
    assert peak < MEDIA_PEAK_BUDGET_KIB, f"media peaked at {peak // MIB} MiB"

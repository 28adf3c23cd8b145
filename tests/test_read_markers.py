"""Read markers, unread counts and read receipts through real processes and sockets, on
SQLite and MariaDB: two sessions of one user agree (a mark on one is pushed to the
other, never back to the one that marked; the counts after a new login and in sync are
the same on both), markers never move back, outsiders learn nothing, receipts only
between two people who both share them, bad input gets typed errors. In-process:
test_read_handlers.py."""

from __future__ import annotations

from wire import WireClient, befriend, users


def _state(reply: dict, room_id: int) -> tuple[int, int, bool]:
    """(read_seq, unread, unread_capped) of a conversation in a login or sync reply."""
    entries = reply["read"] if "read" in reply else reply["rooms"] + reply["direct"]
    (entry,) = [e for e in entries if e["id"] == room_id]
    return entry["read_seq"], entry["unread"], entry["unread_capped"]


def test_two_devices_of_one_user_agree(stack):
    with users(stack, "ann", "bob") as (ann, bob), WireClient(stack.port) as ann2:
        ann2.login("ann", "correct horse")
        for n in range(5):
            sent = bob.call("room.send", room="lobby", text=f"news {n}")["message"]
        room_id, last = sent["room_id"], sent["seq"]
        ann.call("room.send", room="lobby", text="mine")  # not unread for ann
        for device in (ann, ann2):
            assert _state(device.call("sync"), room_id) == (0, 5, False)

        marked = ann.call("read.mark", room="Lobby", seq=last - 2)
        assert (marked["seq"], marked["unread"], marked["unread_capped"]) == (3, 2, False)
        pushed = ann2.event("read", room_id=room_id)
        assert (pushed["seq"], pushed["unread"], pushed["room"]) == (3, 2, "lobby")
        ann.no_event("read")  # the device that marked has the reply
        bob.no_event("read", within=0.2)  # and nobody else hears of it

        # Never back: a lower seq answers the marker as it is, pushes nothing.
        again = ann2.call("read.mark", room="lobby", seq=1)
        assert (again["seq"], again["unread"]) == (3, 2)
        ann.no_event("read")

        # A new login on each device and sync on both say the same.
        with WireClient(stack.port) as ann3:
            snapshot = ann3.call("login", token=ann.token)
            assert _state(snapshot, room_id) == (3, 2, False)
        with WireClient(stack.port) as ann4:
            assert _state(ann4.login("ann", "correct horse"), room_id) == (3, 2, False)
        for device in (ann, ann2):
            assert _state(device.call("sync", cursors={str(room_id): last + 1}), room_id) == (
                3,
                2,
                False,
            )


def test_a_device_that_signs_in_later_hears_of_the_next_mark(stack):
    """On one device a mark pushes nothing (social counts the user's live sessions in
    the mark's transaction: nobody else to tell). A second device that signs in then
    has the marker in its snapshot and gets the next mark's push; signed out, it is
    not counted any more."""
    with users(stack, "fay", "gus") as (fay, gus):
        for n in range(4):
            sent = gus.call("room.send", room="lobby", text=f"fresh {n}")["message"]
        room_id, last = sent["room_id"], sent["seq"]
        assert fay.call("read.mark", room="lobby", seq=last - 2)["seq"] == last - 2
        with WireClient(stack.port) as fay2:
            assert _state(fay2.login("fay", "correct horse"), room_id)[0] == last - 2
            fay.call("read.mark", room="lobby", seq=last - 1)
            assert fay2.event("read", room_id=room_id)["seq"] == last - 1
            fay2.call("logout")
        fay.call("read.mark", room="lobby", seq=last)
        with WireClient(stack.port) as fay3:
            assert _state(fay3.login("fay", "correct horse"), room_id)[0] == last
        fay.no_event("read", within=0.2)


def test_outsiders_learn_nothing(stack):
    with users(stack, "cam", "dee", "eli") as (cam, dee, eli):
        cam.call("room.create", room="den")
        for n in range(3):
            cam.call("room.send", room="den", text=f"secret {n}")
        befriend(cam, dee)
        dm = cam.call("dm.send", to="dee", text="hi dee")["message"]
        # A non-member gets the same refusal whatever seq it tries.
        answers = {
            (e["code"], e["message"])
            for seq in (0, 3, 4, 2**63 - 1)
            for e in [eli.error_of("read.mark", room="den", seq=seq)]
        }
        assert len(answers) == 1 and next(iter(answers))[0] == "forbidden"
        # Someone else's direct chat: by its name, by the other person, in any case.
        for fields in ({"room": dm["room"]}, {"room": dm["room"].upper()}, {"with": "cam"}):
            assert eli.error_of("read.mark", seq=0, **fields)["code"] == "not_found"
        assert eli.error_of("read.mark", seq=0, **{"with": "eli"})["code"] == "not_found"
        # The two of them may; the marker is theirs alone.
        assert dee.call("read.mark", seq=1, **{"with": "cam"})["unread"] == 0
        assert _state(cam.call("sync"), dm["room_id"]) == (0, 0, False)  # cam wrote it
        eli.no_event("read", within=0.2)


def test_receipts_only_when_both_share_them(stack):
    with users(stack, "fay", "gus") as (fay, gus), WireClient(stack.port) as gus2:
        gus2.login("gus", "correct horse")
        befriend(fay, gus)
        for text in ("one", "two", "three"):
            dm = fay.call("dm.send", to="gus", text=text)["message"]
        assert fay.call("sync")["read_receipts"] is False
        on = fay.call("read.receipts", enabled=True)
        assert (on["enabled"], on["receipts"]) == (True, [])
        gus.call("read.mark", seq=1, **{"with": "fay"})
        fay.no_event("read.receipt")  # gus does not share his

        on = gus.call("read.receipts", enabled=True)
        assert on["receipts"] == [{"room_id": dm["room_id"], "with": fay.user, "seq": 0}]
        assert gus2.event("read.receipts")["enabled"] is True  # his other device
        gus2.call("read.mark", seq=3, **{"with": "fay"})
        receipt = fay.event("read.receipt")
        assert (receipt["user"], receipt["room_id"], receipt["seq"]) == (gus.user, dm["room_id"], 3)
        assert gus.event("read", room_id=dm["room_id"])["seq"] == 3
        fay.call("read.mark", seq=2, **{"with": "gus"})
        assert gus.event("read.receipt")["seq"] == 2 and gus2.event("read.receipt")["seq"] == 2
        with WireClient(stack.port) as fay2:
            direct = fay2.call("login", token=fay.token)["direct"]
            assert [(d["read_seq"], d["peer_read_seq"]) for d in direct] == [(2, 3)]

        gus.call("read.receipts", enabled=False)
        fay.call("read.mark", seq=3, **{"with": "gus"})
        gus.no_event("read.receipt")
        assert all("peer_read_seq" not in e for e in fay.call("sync")["read"])


# (fields of a read.mark, error code, the error's field)
BAD_MARKS = [
    ({"room": "lobby", "seq": -1}, "bad_request", "seq"),
    ({"room": "lobby", "seq": "1"}, "bad_request", "seq"),
    ({"room": "lobby", "seq": 2**63}, "bad_request", "seq"),
    ({"room": "lobby"}, "bad_request", "seq"),
    ({"room": "lobby", "seq": 99}, "bad_request", "seq"),  # past the last message
    ({"seq": 0}, "bad_request", "room"),  # no conversation
    ({"room": "lobby", "with": "hal", "seq": 0}, "bad_request", "room"),  # two
    ({"room": 7, "seq": 0}, "bad_request", "room"),
    ({"with": ["hal"], "seq": 0}, "bad_request", "with"),
    ({"room": "nowhere", "seq": 0}, "not_found", None),
    ({"with": "nobody", "seq": 0}, "not_found", None),
]
BAD_SETTINGS = [1, "on", [], {"on": True}]


def test_bad_input_gets_typed_errors(stack):
    with users(stack, "hal") as (hal,):
        hal.call("room.send", room="lobby", text="one message")
        for fields, code, field in BAD_MARKS:
            error = hal.error_of("read.mark", **fields)
            assert (error["code"], error.get("field")) == (code, field), fields
        for enabled in BAD_SETTINGS:
            error = hal.error_of("read.receipts", enabled=enabled)
            assert (error["code"], error["field"]) == ("bad_request", "enabled"), enabled
        assert hal.error_of("read.receipts")["field"] == "enabled"
        # Nothing of it stuck: the connection works, no marker moved, receipts are off.
        synced = hal.call("sync")
        assert synced["read_receipts"] is False
        assert all(e["read_seq"] == 0 for e in synced["read"])


def test_an_edges_marks_go_to_social_together_and_each_is_answered_alone(make_stack, db_url):
    """The edge gathers read.marks for `read_mark_linger_ms` and sends them as one
    request (services/tcp_edge/read_marks.py): social serves one `read.marks` and no
    `read.mark`, yet each client gets its own reply or its own typed error, and each
    marker is committed: a sync on a second connection sees it."""
    from test_metrics import scrape, value

    stack = make_stack(db_url, read_mark_linger_ms=500, serve_metrics=True)
    names = [f"reader{i}" for i in range(8)]
    with users(stack, "ann", *names) as (ann, *readers):
        ann.call("room.create", room="Closed")
        sent = [ann.call("room.send", room="lobby", text=f"news {i}")["message"] for i in range(3)]
        lobby_id = sent[-1]["room_id"]
        assert sent[-1]["seq"] == 3
        asks = {}  # reader -> its request id
        for index, reader in enumerate(readers):
            fields: dict = {"room": "lobby", "seq": 3}
            if index == 1:
                fields = {"room": "Closed", "seq": 1}  # not a member: forbidden/not_found
            elif index == 2:
                fields = {"room": "lobby", "seq": 99}  # not sent yet: bad_request
            asks[reader] = request_id = 1000 + index
            reader.send({"op": "read.mark", "id": request_id, **fields})
        replies = {
            reader: reader.next_matching(lambda f, rid=rid: f.get("id") == rid, timeout=10)
            for reader, rid in asks.items()
        }
        for index, reader in enumerate(readers):
            reply = replies[reader]
            if index == 1:
                assert reply["ok"] is False and reply["error"]["code"] in ("forbidden", "not_found")
            elif index == 2:
                assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
                assert reply["error"]["field"] == "seq" and "3" in reply["error"]["message"]
            else:
                assert reply["ok"] is True, reply
                assert (reply["room_id"], reply["seq"], reply["unread"]) == (lobby_id, 3, 0)

        _, social = scrape(stack.metrics_ports["social"])
        batched = {"component": "social", "op": "read.marks", "outcome": "ok"}
        assert value(social, "chatroom_requests_total", **batched) == 1
        alone = {"component": "social", "op": "read.mark", "outcome": "ok"}
        assert value(social, "chatroom_requests_total", **alone) == 0

        with WireClient(stack.port) as second:  # committed: another session sees it
            second.login(names[0], "correct horse")
            assert _state(second.call("sync"), lobby_id) == (3, 0, False)

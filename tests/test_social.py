"""Friends, presence, rooms, private messages and sync: real processes and sockets."""

from __future__ import annotations

import threading

import pytest

from wire import WireClient, befriend, users, wait_until


def test_original_friend_flow(stack):
    with users(stack, "ann", "ben", "cat") as (ann, ben, cat):
        ann.call("friend.request", username="ben")
        incoming = ben.event("friend.request")
        assert incoming["from"]["username"] == "ann"
        assert [r["user"]["username"] for r in ben.call("friend.list")["incoming"]] == ["ann"]
        assert [r["user"]["username"] for r in ann.call("friend.list")["outgoing"]] == ["ben"]

        ben.call("friend.accept", username="ann")
        accepted = ann.event("friend.accepted")
        assert accepted["friend"]["username"] == "ben" and accepted["friend"]["online"] is True
        assert ben.event("friend.accepted")["friend"]["username"] == "ann"
        ann_list = ann.call("friend.list")
        assert [(f["username"], f["online"]) for f in ann_list["friends"]] == [("ben", True)]
        assert ann_list["outgoing"] == [] and ben.call("friend.list")["incoming"] == []

        # Ann sees Ben go offline and come back.
        ben_token = ben.token
        ben.close()
        offline = ann.event("presence", timeout=10)
        assert (offline["user"]["username"], offline["online"]) == ("ben", False)
        with WireClient(stack.port) as ben2:
            ben2.call("login", token=ben_token)
            online = ann.event("presence", timeout=10)
            assert (online["user"]["username"], online["online"]) == ("ben", True)

            # Cat asks Ben; Ben rejects; Cat is told live.
            cat.call("friend.request", username="ben")
            ben2.event("friend.request")
            ben2.call("friend.reject", username="cat")
            rejected = cat.event("friend.rejected")
            assert rejected["by"]["username"] == "ben"
            assert cat.call("friend.list")["outgoing"] == []
            # Nobody else heard of it, and Cat is not a friend.
            ann.no_event("friend.rejected")
            assert [f["username"] for f in ben2.call("friend.list")["friends"]] == ["ann"]


def test_rejection_reaches_offline_requester_at_next_login(stack):
    with users(stack, "dan", "eva") as (dan, eva):
        dan.call("friend.request", username="eva")
        eva.event("friend.request")
        dan_token = dan.token
        dan.close()
        eva.call("friend.reject", username="dan")
        with WireClient(stack.port) as dan2:
            reply = dan2.call("login", token=dan_token)
            assert reply["outgoing"] == []
            assert dan2.event("friend.rejected")["by"]["username"] == "eva"
        with WireClient(stack.port) as dan3:  # told once, not at every login
            dan3.call("login", token=dan_token)
            dan3.no_event("friend.rejected")


def test_pending_request_is_in_login_snapshot_of_offline_target(stack):
    with WireClient(stack.port) as fay:
        fay.register_and_login("fay")
        fay.call("register", username="gus", password="correct horse")
        fay.call("friend.request", username="gus")
    with WireClient(stack.port) as gus:
        reply = gus.login("gus", "correct horse")
        assert [r["user"]["username"] for r in reply["incoming"]] == ["fay"]


def test_friend_request_rules(make_stack, db_url):
    stack = make_stack(db_url, max_pending_friend_requests=2)
    with users(stack, "hal", "ida", "jon", "kim", "lou") as (hal, ida, jon, kim, lou):
        err = hal.error_of("friend.request", username="HAL")
        assert (err["code"], err["field"]) == ("bad_request", "username")
        assert hal.error_of("friend.request", username="nobody")["code"] == "not_found"
        hal.call("friend.request", username="ida")
        hal.call("friend.request", username="ida")  # asking twice is one request
        assert len(ida.call("friend.list")["incoming"]) == 1
        ida.event("friend.request")
        ida.no_event("friend.request")
        hal.call("friend.request", username="jon")
        assert hal.error_of("friend.request", username="kim")["code"] == "limit_reached"
        # Jon asks Hal back: that accepts Hal's request.
        assert jon.call("friend.request", username="hal")["status"] == "accepted"
        assert hal.event("friend.accepted")["friend"]["username"] == "jon"
        assert hal.error_of("friend.request", username="jon")["code"] == "conflict"
        assert kim.error_of("friend.accept", username="lou")["code"] == "not_found"
        assert kim.error_of("friend.reject", username="hal")["code"] == "not_found"
        # Unfriending tells both, and ends private messages.
        hal.call("friend.remove", username="jon")
        assert jon.event("friend.removed")["user"]["username"] == "hal"
        assert hal.error_of("dm.send", to="jon", text="hi")["code"] == "forbidden"
        assert hal.error_of("friend.remove", username="jon")["code"] == "not_found"


def test_presence_with_two_sessions_and_status(stack, admin_json):
    def neds_connections() -> int:
        online = {u["username"]: u for u in admin_json(stack, "online")["online"]}
        return online["ned"]["connections"] if "ned" in online else 0

    with users(stack, "max", "ned") as (mx, ned):
        befriend(mx, ned)
        with WireClient(stack.port) as ned_phone:
            ned_phone.call("login", token=ned.token)
            mx.no_event("presence")  # already online: a second session changes nothing
            ned_phone.close()
            # Once social has closed the phone's session, Ned is still online: no push.
            wait_until(lambda: neds_connections() == 1, 10, "the phone's session closed")
            mx.no_event("presence")
            assert mx.call("friend.list")["friends"][0]["online"] is True
        ned.call("presence.set", status="在开会 📅")
        status = mx.event("presence")
        assert status["status"] == "在开会 📅" and status["online"] is True
        assert mx.call("friend.list")["friends"][0]["status"] == "在开会 📅"
        ned.close()
        offline = mx.event("presence", timeout=10)
        assert offline["online"] is False and offline["user"]["username"] == "ned"


def test_private_messages_live_offline_and_refused(stack):
    with users(stack, "oli", "pat", "quin") as (oli, pat, quin):
        befriend(oli, pat)
        with WireClient(stack.port) as oli_laptop:
            oli_laptop.call("login", token=oli.token)
            sent = pat.call("dm.send", to="oli", text="悄悄话 🤫")["message"]
            assert sent["to"]["username"] == "oli"
            for device in (oli, oli_laptop):
                got = device.event("message")
                assert got["direct"] is True and got["text"] == "悄悄话 🤫"
                assert got["from"]["username"] == "pat" and got["id"] == sent["id"]
            # The sender's own other session sees it too; the sending one has the reply.
            with WireClient(stack.port) as pat_phone:
                pat_phone.call("login", token=pat.token)
                pat.call("dm.send", to="oli", text="second")
                assert pat_phone.event("message")["text"] == "second"
                pat.no_event("message")
        assert quin.error_of("dm.send", to="oli", text="hello?")["code"] == "forbidden"
        assert quin.error_of("dm.send", to="ghost", text="hello?")["code"] == "not_found"

        # Offline delivery: Oli goes away, Pat writes, Oli syncs at next login.
        cursors = {}
        for conv in oli.call("sync")["conversations"]:
            cursors[str(conv["id"])] = conv["messages"][-1]["seq"]
        oli_token = oli.token
        oli.close()
        for i in range(3):
            pat.call("dm.send", to="oli", text=f"while you were away {i}")
        with WireClient(stack.port) as oli_again:
            oli_again.call("login", token=oli_token)
            convs = oli_again.call("sync", cursors=cursors)["conversations"]
            direct = [c for c in convs if c["kind"] == "direct"]
            assert len(direct) == 1 and direct[0]["with"]["username"] == "pat"
            assert [m["text"] for m in direct[0]["messages"]] == [
                f"while you were away {i}" for i in range(3)
            ]
            history = oli_again.call("dm.history", **{"with": "pat"})["messages"]
            assert [m["text"] for m in history][:2] == ["悄悄话 🤫", "second"]
            assert len(history) == 5


def test_login_snapshot_lists_private_conversations(stack):
    with users(stack, "pia", "quin", "rex") as (pia, quin, rex):
        befriend(pia, quin)
        befriend(pia, rex)
        with WireClient(stack.port) as quin_again:
            assert quin_again.login("quin", "correct horse")["direct"] == []
        to_quin = [pia.call("dm.send", to="quin", text=t)["message"] for t in ("a", "b")]
        from_rex = rex.call("dm.send", to="pia", text="c")["message"]
        with WireClient(stack.port) as pia_again:
            direct = pia_again.login("pia", "correct horse")["direct"]
        # With the read state (docs/protocol.md, Read markers): nothing marked yet, so
        # unread is what the other one wrote.
        unread = {"read_seq": 0, "unread_capped": False, "mentions": 0}
        assert direct == [
            {"id": to_quin[0]["room_id"], "with": quin.user, "last_seq": 2, "unread": 0, **unread},
            {"id": from_rex["room_id"], "with": rex.user, "last_seq": 1, "unread": 1, **unread},
        ]
        with WireClient(stack.port) as quin_again:
            direct = quin_again.login("quin", "correct horse")["direct"]
        assert direct == [
            {"id": to_quin[0]["room_id"], "with": pia.user, "last_seq": 2, "unread": 2, **unread}
        ]


def test_login_reply_has_the_users_own_picture(stack):
    """Every device shows its user's own picture from the start (it was the default
    picture after a restart until the user changed it again)."""
    import base64

    import images

    with WireClient(stack.port) as pic:
        assert pic.register_and_login("pic")["avatar"] is None
        avatar = pic.call("avatar.set", image=base64.b64encode(images.png()).decode())["hash"]
        with WireClient(stack.port) as again:
            assert again.login("pic", "correct horse")["avatar"] == avatar


def test_friends_writing_first_at_the_same_moment_share_one_conversation(stack):
    # Both sides' first messages arrive together: the conversation is created once (the
    # other creation finds it) and all messages are in it, in one seq order.
    from chatroom.framing import encode_frame

    with users(stack, "rue", "sol") as (rue, sol):
        befriend(rue, sol)
        for me, peer in ((rue, "sol"), (sol, "rue")):
            frames = [
                {"op": "dm.send", "id": 200 + n, "to": peer, "text": f"{peer}-{n}"}
                for n in range(5)
            ]
            me.send_raw(b"".join(encode_frame(frame) for frame in frames))
        for me in (rue, sol):
            for n in range(5):
                reply = me.next_matching(lambda f, n=n: f.get("id") == 200 + n)
                assert reply["ok"], reply
        history = rue.call("dm.history", **{"with": "sol"})["messages"]
        assert sorted(m["text"] for m in history) == sorted(
            f"{peer}-{n}" for peer in ("rue", "sol") for n in range(5)
        )
        assert len({m["room_id"] for m in history}) == 1
        assert sorted(m["seq"] for m in history) == list(range(1, 11))


def test_unfriending_stops_a_conversation_already_under_way(stack):
    # After the first message social knows the pair's conversation and skips the lookup
    # before writing; the friendship is then checked in the write's own transaction.
    with users(stack, "rae", "sid") as (rae, sid):
        befriend(rae, sid)
        first = rae.call("dm.send", to="sid", text="first")["message"]
        assert sid.event("message")["id"] == first["id"]
        sid.call("dm.send", to="rae", text="reply")
        assert rae.event("message")["text"] == "reply"
        sid.call("friend.remove", username="rae")
        rae.event("friend.removed")
        for sender, to in ((rae, "sid"), (sid, "rae")):
            err = sender.error_of("dm.send", to=to, text="still there?")
            assert err["code"] == "forbidden"
            assert err["message"] == f"you can only message friends; send {to} a request"
        sid.no_event("message")
        # Friends again: the same conversation goes on, with nothing stored in between.
        befriend(sid, rae)
        third = rae.call("dm.send", to="sid", text="again")["message"]
        assert third["room_id"] == first["room_id"] and third["seq"] == first["seq"] + 2
        history = sid.call("dm.history", **{"with": "rae"})["messages"]
        assert [m["text"] for m in history] == ["first", "reply", "again"]


def test_rooms_create_join_leave(stack):
    with users(stack, "rae", "sam", "tia") as (rae, sam, tia):
        room = rae.call("room.create", room="Book Club 读书会")["room"]
        assert room["kind"] == "group"
        assert rae.event("room.joined")["room"]["name"] == "Book Club 读书会"
        assert rae.error_of("room.create", room="book club 读书会")["code"] == "conflict"
        assert rae.error_of("room.create", room="dm:1:2")["code"] == "bad_request"
        assert sam.error_of("room.send", room="Book Club 读书会", text="hi")["code"] == "forbidden"
        sam.call("room.join", room="book club 读书会")
        assert rae.event("room.member")["user"]["username"] == "sam"
        rae.call("room.send", room="Book Club 读书会", text="welcome")
        got = sam.event("message")
        assert got["room"] == "Book Club 读书会" and got["text"] == "welcome"
        tia.no_event("message")
        listed = {r["name"]: r for r in sam.call("room.list")["rooms"]}
        assert listed["lobby"]["joined"] and listed["Book Club 读书会"]["members"] == 2
        names = [
            m["username"] for m in sam.call("room.members", room="Book Club 读书会")["members"]
        ]
        assert sorted(names) == ["rae", "sam"]
        sam.call("room.leave", room="Book Club 读书会")
        rae.call("room.send", room="Book Club 读书会", text="bye")
        sam.no_event("message")
        # The room is known to social now, so membership is checked in the write's own
        # transaction: still refused, nothing stored.
        err = sam.error_of("room.send", room="Book Club 读书会", text="still here?")
        assert err["code"] == "forbidden"
        assert err["message"] == "you are not a member of 'Book Club 读书会'; join it first"
        once = rae.call("room.send", room="Book Club 读书会", text="once", client_id="bc-1")
        again = rae.call("room.send", room="Book Club 读书会", text="once", client_id="bc-1")
        assert once["message"]["id"] == again["message"]["id"]
        texts = [m["text"] for m in rae.call("room.history", room="Book Club 读书会")["messages"]]
        assert texts == ["welcome", "bye", "once"]
        assert sam.error_of("room.leave", room="lobby")["code"] == "forbidden"
        assert sam.error_of("room.history", room="Book Club 读书会")["code"] == "forbidden"


def test_concurrent_senders_sync_without_gaps(make_stack, db_url):
    stack = make_stack(db_url)
    senders, per_sender = 5, 200
    with WireClient(stack.port) as reader:
        reader.register_and_login("reader")
        start_seq = reader.call("sync")["conversations"]
        cursors = {str(c["id"]): c["last_seq"] for c in start_seq}

        failures: list[str] = []

        def send_all(index: int) -> None:
            with WireClient(stack.port, timeout=60) as client:
                client.register_and_login(f"sender{index}")
                # All 200 pipelined at once: they run concurrently on the server.
                frames = [
                    {
                        "op": "room.send",
                        "id": i,
                        "room": "lobby",
                        "text": f"s{index}-{i}",
                        "client_id": f"s{index}-{i}",
                    }
                    for i in range(per_sender)
                ]
                for frame in frames:
                    client.send(frame)
                for _ in range(per_sender):
                    reply = client.next_matching(lambda f: "ok" in f and f.get("id") is not None)
                    if not reply["ok"]:
                        failures.append(str(reply))

        threads = [threading.Thread(target=send_all, args=(i,)) for i in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures, failures[:3]

        received = []
        while True:
            convs = reader.call("sync", cursors=cursors, limit=300)["conversations"]
            if not convs:
                break
            for conv in convs:
                received.extend(conv["messages"])
                cursors[str(conv["id"])] = conv["messages"][-1]["seq"]
        texts = [m["text"] for m in received]
        assert len(texts) == senders * per_sender
        assert len(set(texts)) == len(texts)  # no duplicates
        assert len({m["id"] for m in received}) == len(received)
        seqs = [m["seq"] for m in received]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one order, no gaps
        for index in range(senders):  # each sender's own order is kept
            mine = [int(t.split("-")[1]) for t in texts if t.startswith(f"s{index}-")]
            assert len(mine) == per_sender


@pytest.mark.timeout(120)
def test_client_id_names_one_message_per_conversation_byte_for_byte(stack):
    """A retry (same client_id, same conversation) returns the stored message; the same
    client_id in another conversation, or one differing only in case or accents (MySQL's
    default collation would fold them), is another message."""
    with users(stack, "ann", "bob") as (ann, bob):
        befriend(ann, bob)
        ann.call("room.create", room="den")

        def send(op: str, client_id: str, **where: str) -> dict:
            return ann.call(op, text=f"text {client_id}", client_id=client_id, **where)["message"]

        first = send("room.send", "m-1", room="lobby")
        assert send("room.send", "m-1", room="lobby")["id"] == first["id"]  # a retry
        others = [
            send("room.send", "m-1", room="den"),
            send("dm.send", "m-1", to="bob"),
            send("room.send", "M-1", room="lobby"),
            send("room.send", "m-é", room="lobby"),
            send("room.send", "m-e", room="lobby"),
        ]
        assert len({first["id"], *(m["id"] for m in others)}) == 6
        assert others[0]["room"] == "den" and others[1]["room"].startswith("dm:")
        lobby = ann.call("room.history", room="lobby")["messages"]
        assert [m["client_id"] for m in lobby] == ["m-1", "M-1", "m-é", "m-e"]
        assert [m["text"] for m in lobby] == ["text m-1", "text M-1", "text m-é", "text m-e"]

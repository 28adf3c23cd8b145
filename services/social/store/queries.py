"""A transaction's (or a read's) queries: one object on one connection."""

from __future__ import annotations

from sqlalchemy import Connection

from services.social.store.accounts import AccountQueries
from services.social.store.blocks import BlockQueries
from services.social.store.edits import EditQueries
from services.social.store.friends import FriendQueries
from services.social.store.moderation import ModerationQueries
from services.social.store.presence import PresenceQueries
from services.social.store.reads import ReadQueries
from services.social.store.rooms import RoomQueries


class Tx(
    PresenceQueries,
    FriendQueries,
    RoomQueries,
    ReadQueries,
    AccountQueries,
    EditQueries,
    BlockQueries,
    ModerationQueries,
):
    """What SocialStore.transaction() and reading() give: every query of the service,
    run on that one connection (so in that one transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

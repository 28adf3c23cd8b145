"""Social handlers: sessions and presence, friends, rooms, messages and sync.

Every handler takes the validated args and the caller's context (who is asking, set by
the edge), makes its decisions on what the store reads, in the same transaction as its
writes, and queues its pushes with ctx.publish; the runtime publishes them after the
commit. The ops are grouped by what they act on, each group a class with its ops().
"""

from __future__ import annotations

from chatroom.config import Settings
from chatroom.service import Handler, Job
from services.social.handlers.accounts import AccountHandlers
from services.social.handlers.blocks import BlockHandlers
from services.social.handlers.edits import EditHandlers
from services.social.handlers.friends import FriendHandlers
from services.social.handlers.messages import MessageHandlers
from services.social.handlers.moderation import ModerationHandlers
from services.social.handlers.notify import NotifyHandlers
from services.social.handlers.reads import ReadHandlers
from services.social.handlers.rooms import RoomHandlers
from services.social.handlers.sessions import SessionHandlers
from services.social.handlers.typing import TypingHandlers
from services.social.store import SocialStore


class SocialHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.sessions = SessionHandlers(store, settings)
        self.friends = FriendHandlers(store, settings)
        self.rooms = RoomHandlers(store, settings)
        self.messages = MessageHandlers(store, settings)
        self.typing = TypingHandlers(store, settings)
        self.accounts = AccountHandlers(store, settings)
        self.reads = ReadHandlers(store, settings)
        self.edits = EditHandlers(store, settings)
        self.blocks = BlockHandlers(store, settings)
        self.moderation = ModerationHandlers(store, settings)
        self.notify = NotifyHandlers(store, settings)

    def ops(self) -> dict[str, Handler]:
        return {
            **self.sessions.ops(),
            **self.friends.ops(),
            **self.rooms.ops(),
            **self.messages.ops(),
            **self.typing.ops(),
            **self.accounts.ops(),
            **self.reads.ops(),
            **self.edits.ops(),
            **self.blocks.ops(),
            **self.moderation.ops(),
            **self.notify.ops(),
        }

    def jobs(self) -> list[Job]:
        reap = self.sessions.reap_dead_edges
        return [Job("reap-dead-edges", self.settings.edge_heartbeat_s, reap)]

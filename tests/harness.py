"""The tests' view of chatroom.localstack (kept so test modules import one name)."""

from chatroom.localstack import Stack, free_port, wait_for_port

__all__ = ["Stack", "free_port", "wait_for_port"]

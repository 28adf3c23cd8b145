"""The ChatRoom desktop client (PySide6). Installed as chatroom.client."""

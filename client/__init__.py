"""The ChatRoom desktop client (PySide6). Imported as `client` (its folder)."""

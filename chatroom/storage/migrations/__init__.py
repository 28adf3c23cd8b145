"""Alembic migrations of the ChatRoom schema (chatroom/storage/migrate.py runs them).

versions/ holds one file per schema change, oldest first: 0001 is the schema of the
first release (d2e3739's db/init.sql); every later change to chatroom/storage/schema.py
comes with a revision here (docs/operations.md, "Schema migrations")."""

"""Migration scripts; Alembic loads them by file, not by import."""

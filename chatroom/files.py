"""Files and folders that hold secrets (bus keys, the SQLite database, results that name
hosts): made readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(path: str | os.PathLike) -> Path:
    """`path`, made with its missing parents, each 0700 (mkdir's mode alone would cover
    only the last one): var/ holds the SQLite database and the bus keys, which warn
    about a folder open to all."""
    target = Path(path)
    missing = []
    folder = target
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return target

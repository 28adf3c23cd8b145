"""Print a Markdown summary of a results folder (default var/results/) for
docs/benchmarks.md. Copy the plots you cite into docs/results/ next to the numbers.

.venv/bin/python -m loadtest.report [FOLDER]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loadtest.results import DEFAULT_OUT, TABLE_COLUMNS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.report", description=__doc__)
    parser.add_argument("folder", type=Path, nargs="?", default=DEFAULT_OUT)
    folder = parser.parse_args(argv).folder
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        print(f"### {doc['scenario']} (commit {doc.get('commit', '?')}, {doc.get('when', '')})\n")
        params = doc["results"][0]["params"] if doc["results"] else {}
        print(f"Parameters: `{json.dumps(params)}`\n")
        print("| " + " | ".join(TABLE_COLUMNS) + " |")
        print("|" + "---|" * len(TABLE_COLUMNS))
        for r in doc["results"]:
            print("| " + " | ".join(str(r.get(c, "")) for c in TABLE_COLUMNS) + " |")
        extras = {
            k: v
            for k, v in doc.items()
            if k not in ("scenario", "commit", "when", "machine", "results")
        }
        for r in doc["results"]:
            if r.get("extra"):
                extras[r["system"]] = r["extra"]
        if extras:
            print(f"\nAlso: `{json.dumps(extras, ensure_ascii=False)}`")
        if (folder / f"{doc['scenario']}.png").exists():
            # As cited from docs/benchmarks.md once copied to docs/results/.
            print(f"\n![{doc['scenario']}](results/{doc['scenario']}.png)")
        print()


if __name__ == "__main__":
    main()

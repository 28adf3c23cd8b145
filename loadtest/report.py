"""Print a Markdown summary of loadtest/results/*.json (pasted into docs/benchmarks.md).

.venv/bin/python -m loadtest.report
"""

from __future__ import annotations

import json

from loadtest.bench import RESULTS, TABLE_COLUMNS


def main() -> None:
    for path in sorted(RESULTS.glob("*.json")):
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
        if (RESULTS / f"{doc['scenario']}.png").exists():
            print(f"\n![{doc['scenario']}](../loadtest/results/{doc['scenario']}.png)")
        print()


if __name__ == "__main__":
    main()

"""Print a Markdown summary of loadtest/results/*.json (pasted into docs/benchmarks.md).

.venv/bin/python -m loadtest.report
"""

from __future__ import annotations

import json

from loadtest.bench import RESULTS

COLUMNS = [
    "system",
    "sent",
    "delivered",
    "lost",
    "errors",
    "duration_s",
    "rate_per_s",
    "p50",
    "p90",
    "p99",
    "max",
]


def main() -> None:
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        print(f"### {doc['scenario']} (commit {doc.get('commit', '?')}, {doc.get('when', '')})\n")
        params = doc["results"][0]["params"] if doc["results"] else {}
        print(f"Parameters: `{json.dumps(params)}`\n")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for r in doc["results"]:
            print("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |")
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

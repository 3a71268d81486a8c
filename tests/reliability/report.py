"""Print the reliability figures the last `pytest -m reliability` run saved, as a table.

    python -m tests.reliability.report
"""

from __future__ import annotations

import json
import sys

from tests.reliability.harness import REPORT_DIR

ORDER = ["duplicates", "crash", "storage-outage", "poison", "malformed", "scale-out"]
COLUMNS = [
    ("scenario", "scenario"), ("submitted", "jobs submitted"), ("completed", "completed"),
    ("failed", "failed"), ("duplicates_delivered", "duplicates delivered"),
    ("handler_runs", "handler runs"), ("lost", "lost"), ("overwritten", "overwritten"),
    ("drain_seconds", "time to drain (s)"),
]


def main() -> int:
    found = {p.stem: json.loads(p.read_text()) for p in REPORT_DIR.glob("*.json")}
    if not found:
        print(f"no figures in {REPORT_DIR}: run `make reliability-report`", file=sys.stderr)
        return 1
    print("| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for name in sorted(found, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        row = found[name]
        print("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    notes = {name: found[name]["notes"] for name in found if found[name]["notes"]}
    for name, extra in notes.items():
        print(f"\n{name}: " + ", ".join(f"{k} = {v}" for k, v in extra.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start: from process start to the first answered request, in a fresh Python process.

Each run starts `python`, which imports `function_app` (the worker's indexing step), then
answers one GET for a job that does not exist: the store is built on that first use (the
table client, create-table-if-missing) and reads once. Times are wall-clock, taken in the
child except the spawn, which the parent stamps just before it starts the process. Then one
`python -X importtime` run says where the import's time goes, by top-level package.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]
GOAL_IMPORT_MS = 300.0
#: Packages only some deployments need: they must not be imported by `import function_app`.
OPTIONAL = ("azure.identity", "msal", "opentelemetry.sdk")
CHILD = """
import json, sys, time
started = time.time()
import function_app
imported = time.time()
from tests.support.functions import get
app = function_app.app
built = [b.build(app.auth_level) for b in app._function_builders]
handler = next(f for f in built if f.get_function_name() == "get_job_status").get_user_function()
response = handler(get("http://localhost/api/jobs/x", job_id="%s"))
answered = time.time()
print(json.dumps({"started": started, "imported": imported, "answered": answered,
                  "status": response.status_code,
                  "optional": [m for m in %r if m in sys.modules]}))
"""
MISSING_JOB = "00000000-0000-4000-8000-000000000000"


def run(runs: int) -> dict[str, Any]:
    """`runs` cold starts against a fresh Azurite; medians, and the import's breakdown."""
    azurite = Azurite()
    azurite.start()
    try:
        env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string,
               "JOB_HANDLER_MODULES": ""}
        starts = [_one(env) for _ in range(runs)]
        breakdown = import_breakdown(env)
    finally:
        azurite.stop()
    imports = [s["import_ms"] for s in starts]
    return {
        "runs": runs,
        "interpreter_ms": round(statistics.median(s["interpreter_ms"] for s in starts), 1),
        "import_function_app_ms": round(statistics.median(imports), 1),
        "import_function_app_min_ms": min(imports),
        "first_request_ms": round(statistics.median(s["first_request_ms"] for s in starts), 1),
        "start_to_first_answer_ms": round(statistics.median(s["total_ms"] for s in starts), 1),
        "goal_import_ms": GOAL_IMPORT_MS,
        "optional_imported": sorted({m for s in starts for m in s["optional"]}),
        "import_breakdown_ms": breakdown,
    }


def _one(env: dict[str, str]) -> dict[str, Any]:
    spawned = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD % (MISSING_JOB, OPTIONAL)],  # noqa: S603
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    if child["status"] != 404:
        raise RuntimeError(f"cold start: the first GET answered {child['status']}")
    return {"interpreter_ms": _ms(child["started"] - spawned),
            "import_ms": _ms(child["imported"] - child["started"]),
            "first_request_ms": _ms(child["answered"] - child["imported"]),
            "total_ms": _ms(child["answered"] - spawned), "optional": child["optional"]}


def import_breakdown(env: dict[str, str], top: int = 8) -> dict[str, float]:
    """`python -X importtime -c 'import function_app'`: cumulative ms by top-level package."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"],  # noqa: S603
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    totals: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        parts = line.split("|")
        # Direct children of `function_app` sit two spaces in; cumulative time in µs.
        if len(parts) == 3 and parts[2].startswith("   ") and not parts[2].startswith("    "):
            totals[parts[2].strip().split(".")[0]] += int(parts[1])
        elif len(parts) == 3 and parts[2].strip() == "function_app":
            totals["(function_app, total)"] = int(parts[1])
    return {name: round(us / 1000, 1) for name, us in totals.most_common(top)}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)

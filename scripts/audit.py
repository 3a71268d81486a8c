"""Audit the locked runtime requirements with pip-audit, telling "cannot check" from "vulnerable".

Exit 1 only for a known vulnerability. When the vulnerability database cannot be reached
(pip-audit then skips every package), say so plainly and exit 0: that is not a finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def main() -> int:
    command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "-r", str(LOCK), "-f", "json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print("pip-audit could not run or could not reach the vulnerability database; "
              "nothing was checked, and this is not a vulnerability finding:")
        print(done.stderr.strip().splitlines()[-1:] or "(no output)")
        return 0
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep.get('version', '')}: {ids}")
    if skipped and len(skipped) == len(deps):
        print(f"pip-audit: the vulnerability database was unreachable; none of the {len(deps)} "
              "locked packages could be checked. This is not a vulnerability finding.")
    elif skipped:
        print("pip-audit could not check: " + ", ".join(d["name"] for d in skipped))
    if not vulnerable and len(skipped) < len(deps):
        print(f"pip-audit: no known vulnerabilities in {len(deps) - len(skipped)} packages.")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())

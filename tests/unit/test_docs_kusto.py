"""Every ```kusto block on docs/operations.md, and every alert rule's `"query"` there, parses
and analyzes without a diagnostic.

The check is Microsoft's Kusto language service (the npm package
@kusto/language-service-next, run by tests/support/kusto_check.js), given the columns of the
Application Insights tables the queries read, so a misspelt column or function fails too.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "operations.md"
CHECKER = ROOT / "tests" / "support" / "kusto_check.js"
_BLOCK = re.compile(r"^```kusto\n(.*?)^```", re.S | re.M)
# An alert rule's query, a JSON string in a bash block's heredoc.
_ALERT_QUERY = re.compile(r'^\s*"query": ("(?:[^"\\]|\\.)*")', re.M)

_COMMON = ("customDimensions:dynamic, customMeasurements:dynamic, operation_Name:string, "
           "operation_Id:string, operation_ParentId:string, cloud_RoleName:string, "
           "cloud_RoleInstance:string, appName:string, itemType:string, itemCount:int")
#: The columns of the Application Insights tables (the classic, resource-centric schema the
#: Logs page of an Application Insights resource queries).
TABLES = {
    "requests": "(timestamp:datetime, id:string, source:string, name:string, url:string, "
                f"success:bool, resultCode:string, duration:real, performanceBucket:string, "
                f"{_COMMON})",
    "dependencies": "(timestamp:datetime, id:string, target:string, type:string, name:string, "
                    "data:string, success:bool, resultCode:string, duration:real, "
                    f"performanceBucket:string, {_COMMON})",
    "traces": f"(timestamp:datetime, message:string, severityLevel:int, {_COMMON})",
    "exceptions": "(timestamp:datetime, problemId:string, type:string, message:string, "
                  "outerMessage:string, innermostMessage:string, severityLevel:int, "
                  f"details:dynamic, {_COMMON})",
    "customMetrics": "(timestamp:datetime, name:string, value:real, valueCount:int, "
                     "valueSum:real, valueMin:real, valueMax:real, valueStdDev:real, "
                     f"{_COMMON})",
}


def diagnostics(queries: list[str]) -> list[list[list[object]]]:
    """For each query, the language service's diagnostics: [severity, message, offset]."""
    done = subprocess.run(["node", str(CHECKER)], input=json.dumps(
        {"tables": TABLES, "queries": queries}), capture_output=True, text=True, check=True,
        cwd=ROOT, timeout=120)
    found: list[list[list[object]]] = json.loads(done.stdout)
    return found


def test_docs_kusto_checker_reports_a_wrong_column_and_a_syntax_error() -> None:
    good, wrong_column, broken = diagnostics([
        "traces | where tostring(customDimensions.job_id) == 'x' | project timestamp, message",
        "traces | where job_id == 'x'",
        "customMetrics | summarize by",
    ])
    assert good == []
    assert any("job_id" in str(message) for _, message, _ in wrong_column)
    assert broken != []


def test_docs_kusto_every_query_on_the_operations_page_analyzes_cleanly() -> None:
    text = PAGE.read_text(encoding="utf-8")
    queries = _BLOCK.findall(text)
    alerts = [json.loads(found) for found in _ALERT_QUERY.findall(text)]
    assert len(queries) >= 4 and len(alerts) >= 3, "the page lost its queries"
    queries += alerts
    found = diagnostics(queries)
    problems = {query.splitlines()[0]: d for query, d in zip(queries, found, strict=True) if d}
    assert problems == {}

"""Schemathesis hooks for the fuzz run (SCHEMATHESIS_HOOKS=tests.fuzz.hooks).

One check replaces the built-in positive_data_acceptance: it is the same check, apart from the
refusals of a schema-valid request the docs state: an Idempotency-Key reused with another body
answers 422 `idempotency_key_reused`, and a customer_id whose letters mix scripts or that holds
a code point Unicode has not assigned answers 422 (docs/security.md): the one-script rule is
more than a regular expression can say, and which code points are unassigned depends on the
Unicode version, so the pattern names only the noncharacters among them.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

REUSED_KEY = "idempotency_key_reused"
MIXED_SCRIPTS = "customer_id must use letters of one script"
UNASSIGNED = "a code point Unicode has not assigned"


@schemathesis.check
def positive_data_acceptance_but_reused_key(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schema-valid data is accepted, unless its Idempotency-Key was used with another body."""
    if response.status_code == 422 and (_error_types(response.text) == {REUSED_KEY}
                                         or _customer_id_beyond_pattern(response.text)):
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


def _error_types(text: str) -> set[str]:
    try:
        return {detail["type"] for detail in json.loads(text)["detail"]}
    except (ValueError, KeyError, TypeError):
        return set()


def _customer_id_beyond_pattern(text: str) -> bool:
    try:
        details = json.loads(text)["detail"]
        return bool(details) and all(
            d["loc"][-1] == "customer_id" and (MIXED_SCRIPTS in d["msg"] or UNASSIGNED in d["msg"])
            for d in details)
    except (ValueError, KeyError, TypeError, IndexError):
        return False

"""Schemathesis against the app's own OpenAPI document, over HTTP through the local host.

It must find no 5xx, no response that breaks the documented schema or headers, and no
undocumented status code, for single calls and for the linked POST -> GET / DELETE flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import JobApp, serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# What the API must never do. Positive-data acceptance is left out on purpose: a schema-valid
# body with a reused Idempotency-Key is refused with 422 by design.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzzed_app() -> Iterator[JobApp]:
    yield from serve(JOB_HANDLER_MODULES="")


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: JobApp) -> schemathesis.BaseSchema:
    assert fuzzed_app.host is not None
    base = fuzzed_app.host.base_url
    return schemathesis.openapi.from_url(f"{base}/api/openapi.json")


def test_fuzz_every_operation(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /api/jobs", "GET /api/jobs/{job_id}", "DELETE /api/jobs/{job_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        call()


def test_fuzz_stateful_links(api_schema: schemathesis.BaseSchema) -> None:
    """POST gives a job_id that GET and DELETE use; schemathesis follows those links.

    Its use-after-free check is left out: DELETE cancels a job, and the cancelled job stays
    readable (200) until retention purges it, as the API documents.
    """
    links = api_schema.as_state_machine()

    class Workflow(links):  # type: ignore[misc,valid-type]
        def validate_response(self, response: Any, case: schemathesis.Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Workflow.run(settings=settings(max_examples=30, stateful_step_count=6, deadline=None,
                                  derandomize=True, suppress_health_check=list(HealthCheck)))

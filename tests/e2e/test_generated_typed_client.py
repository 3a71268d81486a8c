"""A job type with a payload model, seen by a generated client: the document ties each payload
schema to its `job_type`, so openapi-python-client makes one body model per job type."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.e2e.conftest import JobApp, serve
from tests.e2e.test_generated_client import PACKAGE, _modules, _poll, generated

pytestmark = pytest.mark.e2e
__all__ = ["generated"]  # the fixture, generating from this module's served_app


@pytest.fixture(scope="module")
def served_app() -> Iterator[JobApp]:
    yield from serve(JOB_HANDLER_MODULES="examples.resize")


def test_generated_client_has_a_body_model_per_typed_job_type(
    generated: tuple[ModuleType, str]
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    submit = importlib.import_module(f"{PACKAGE}.api.jobs.submit_job")
    assert {"ResizeJobSubmission", "ResizePayload", "FreeFormJobSubmission"} <= set(dir(models))
    body = submit.sync_detailed.__annotations__["body"]
    assert "ResizeJobSubmission" in str(body) and "FreeFormJobSubmission" in str(body)


def test_generated_client_submits_a_typed_job_and_gets_422_for_a_bad_field(
    served_app: JobApp, generated: tuple[ModuleType, str]
) -> None:
    package, _ = generated
    api = _modules(f"{PACKAGE}.api.jobs", "submit_job", "get_job")
    models = importlib.import_module(f"{PACKAGE}.models")
    assert served_app.host is not None
    client = package.AuthenticatedClient(
        base_url=served_app.host.base_url, token=uuid.uuid4().hex, prefix="",
        auth_header_name="x-functions-key")
    payload = models.ResizePayload(asset_url="https://example.invalid/a.png", width=64,
                                   height=48)
    body = models.ResizeJobSubmission(job_type=models.ResizeJobSubmissionJobType.RESIZE,
                                      customer_id="cust-123", payload=payload)
    accepted = api["submit_job"].sync_detailed(client=client, body=body)
    assert accepted.status_code == 202
    record = _poll(lambda: api["get_job"].sync(accepted.parsed.job_id, client=client),
                   "completed")
    assert record.result.to_dict()["width"] == 64

    payload.width = 0
    refused = api["submit_job"].sync_detailed(client=client, body=body)
    assert refused.status_code == 422
    assert [d.loc for d in refused.parsed.detail] == [["body", "payload", "width"]]

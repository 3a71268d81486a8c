"""The app's binding metadata and OpenAPI document, as the host and Swagger UI read them."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from jobs.handlers import known_job_types

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bindings() -> dict[str, list[dict[str, Any]]]:
    import function_app

    built = [b.build(function_app.app.auth_level) for b in function_app.app._function_builders]
    return {f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in built}


def test_metadata_submit_job_bindings(bindings: dict[str, list[dict[str, Any]]]) -> None:
    by_type = {b["type"]: b for b in bindings["submit_job"]}
    assert by_type["httpTrigger"]["route"] == "jobs"
    assert by_type["httpTrigger"]["methods"] == ["POST"]
    assert by_type["queue"] == {"direction": "OUT", "type": "queue", "name": "job_message",
                                "queueName": "job-requests", "connection": "AzureWebJobsStorage"}


def test_metadata_worker_and_poison_triggers(bindings: dict[str, list[dict[str, Any]]]) -> None:
    assert bindings["process_job"][0]["queueName"] == "job-requests"
    assert bindings["fail_poisoned_job"][0]["queueName"] == "job-requests-poison"
    assert bindings["purge_expired_jobs"][0]["type"] == "timerTrigger"
    assert bindings["cancel_job"][0]["methods"] == ["DELETE"]

    get_trigger = bindings["get_job_status"][0]
    assert (get_trigger["route"], get_trigger["methods"]) == ("jobs/{job_id}", ["GET"])


def test_metadata_every_function_takes_its_bindings_by_name() -> None:
    """The host passes each binding by its name, so every name must be a parameter."""
    import inspect

    import function_app

    for builder in function_app.app._function_builders:
        function = builder.build(function_app.app.auth_level)
        params = set(inspect.signature(function.get_user_function()).parameters)
        names = {b["name"] for b in json.loads(function.get_function_json())["bindings"]}
        assert names - {"$return"} <= params, function.get_function_name()


def test_metadata_validate_http_is_below_every_app_decorator() -> None:
    """@validate_http above an @app.* binding fails at import with azure-functions-validation."""
    tree = ast.parse((ROOT / "function_app.py").read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        names = [ast.unparse(d).split("(")[0] for d in node.decorator_list]
        if "validate_http" in names:
            below = names[names.index("validate_http") + 1:]
            assert below == [], f"{node.name}: {below} sit below @validate_http"
            assert any(n.startswith("app.") for n in names[: names.index("validate_http")])


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    import function_app
    from tests.support.functions import get, user_functions

    openapi_json = user_functions(function_app.app)["openapi_document"]
    response = openapi_json(get("http://localhost/api/openapi.json"))
    assert response.status_code == 200
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def test_openapi_document_is_valid_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_openapi_lists_every_status_code(spec: dict[str, Any]) -> None:
    post = spec["paths"]["/api/jobs"]["post"]
    get = spec["paths"]["/api/jobs/{job_id}"]["get"]
    delete = spec["paths"]["/api/jobs/{job_id}"]["delete"]
    assert set(post["responses"]) == {"202", "400", "413", "415", "422", "503"}
    assert set(get["responses"]) == {"200", "404", "503"}
    assert set(delete["responses"]) == {"200", "404", "409", "503"}
    for operation in (post, get, delete):
        for code, response in operation["responses"].items():
            assert "schema" in response["content"]["application/json"], code


def test_openapi_request_schema_is_the_submission_model(spec: dict[str, Any]) -> None:
    """One variant per typed job type (chosen by job_type) or, with none, the plain model:
    each requires job_type and customer_id, and together they name every job type once."""
    body = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]
    schema = component(spec, body["schema"])
    variants = [component(spec, v) for v in schema.get("oneOf", [schema])]
    for variant in variants:
        assert {"job_type", "customer_id"} <= set(variant["required"])
    named = [t for v in variants for t in v["properties"]["job_type"]["enum"]]
    assert sorted(named) == known_job_types()
    if "oneOf" in schema:
        mapping = schema["discriminator"]["mapping"]
        assert schema["discriminator"]["propertyName"] == "job_type"
        assert sorted(mapping) == known_job_types()
        for job_type, ref in mapping.items():
            assert job_type in component(spec, {"$ref": ref})["properties"]["job_type"]["enum"]


def component(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, or the component it refers to."""
    if "$ref" not in schema:
        return schema
    found: dict[str, Any] = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return found


def test_openapi_documents_headers_and_cancelled_status(spec: dict[str, Any]) -> None:
    post = spec["paths"]["/api/jobs"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert "cancelled" in spec["components"]["schemas"]["JobStatus"]["enum"]


def test_openapi_links_name_real_operations_and_headers_are_documented(
    spec: dict[str, Any]
) -> None:
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    accepted = spec["paths"]["/api/jobs"]["post"]["responses"]["202"]
    assert {link["operationId"] for link in accepted["links"].values()} <= operation_ids
    assert {"Location", "Retry-After", "X-Correlation-Id", "Idempotent-Replayed"} <= set(
        accepted["headers"])
    status = spec["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["200"]
    assert {"Retry-After", "Expires"} <= set(status["headers"])

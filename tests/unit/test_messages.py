"""The queue message codec and the request model, without storage."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from jobs.errors import InvalidMessage, MessageTooLarge
from jobs.handlers import known_job_types
from jobs.messages import (
    MAX_MESSAGE_BYTES,
    decode_message,
    encode_message,
    job_id_for,
    names_its_job,
    new_job_message,
)
from jobs.models import JobMessage, JobSubmissionRequest, is_job_id

MESSAGE = JobMessage(job_id="0b7c6c1e-5b8a-4c39-9a53-3f1f4f0f3f11", job_type="thumbnail",
                     customer_id="cust", payload={"k": ["v", 1]},
                     submitted_at=datetime(2026, 1, 1, tzinfo=UTC), token="t0k")  # noqa: S106


def test_messages_round_trip() -> None:
    assert decode_message(encode_message(MESSAGE).encode()) == MESSAGE


def test_messages_new_message_names_its_job_and_any_change_names_another() -> None:
    job = new_job_message(job_type="thumbnail", customer_id="cust", payload={"k": [1, 2.5]},
                          submitted_at=MESSAGE.submitted_at, correlation_id="c" * 32,
                          nonce=uuid.uuid4().hex)
    assert names_its_job(job) and uuid.UUID(job.job_id).version == 8
    again = new_job_message(job_type="thumbnail", customer_id="cust", payload={"k": [1, 2.5]},
                            submitted_at=MESSAGE.submitted_at, correlation_id="c" * 32,
                            nonce=uuid.uuid4().hex)
    assert again.job_id != job.job_id  # a new nonce makes a new id
    for change in [{"job_type": "other"}, {"customer_id": "cust2"}, {"payload": {"k": [1]}},
                   {"submitted_at": datetime(2026, 1, 2, tzinfo=UTC)},
                   {"correlation_id": "d" * 32}, {"token": "guess"}]:
        forged = dataclasses.replace(job, **change)
        assert not names_its_job(forged) and job_id_for(forged) != job.job_id


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_messages_trace_context_round_trips_outside_the_digest() -> None:
    job = new_job_message(job_type="thumbnail", customer_id="cust", payload={},
                          submitted_at=MESSAGE.submitted_at, correlation_id="c",
                          nonce=uuid.uuid4().hex)
    traced = dataclasses.replace(job, traceparent=TRACEPARENT, tracestate="v=1")
    assert decode_message(encode_message(traced).encode()) == traced
    # The same job, whatever trace it was submitted in: the id binds the job alone.
    assert names_its_job(traced) and job_id_for(traced) == job_id_for(job)
    assert "traceparent" not in json.loads(encode_message(job))


@pytest.mark.parametrize("trace", [
    {"traceparent": "00-xyz"},
    {"traceparent": TRACEPARENT.upper()},
    {"traceparent": 12},
    {"traceparent": TRACEPARENT, "tracestate": ["v=1"]},
    {"traceparent": TRACEPARENT, "tracestate": "v=" + "x" * 600},
])
def test_messages_malformed_trace_context_is_dropped_not_the_message(trace: dict[str, object]
                                                                     ) -> None:
    body = {**json.loads(encode_message(MESSAGE)), **trace}
    decoded = decode_message(json.dumps(body).encode())
    assert dataclasses.replace(decoded, traceparent="", tracestate="") == MESSAGE
    assert decoded.traceparent in ("", TRACEPARENT) and decoded.tracestate == ""


def test_messages_job_id_survives_the_queue_and_ignores_key_order() -> None:
    job = new_job_message(job_type="t", customer_id="c",
                          payload={"b": 1, "a": {"y": 0.1, "x": -0.0}},
                          submitted_at=MESSAGE.submitted_at, correlation_id="", nonce="n")
    assert names_its_job(decode_message(encode_message(job).encode()))
    assert names_its_job(dataclasses.replace(job, payload={"a": {"x": -0.0, "y": 0.1}, "b": 1}))


def test_messages_encode_refuses_more_than_the_queue_holds() -> None:
    big = JobMessage(job_id="id", job_type="t", customer_id="c",
                     payload={"b": "x" * MAX_MESSAGE_BYTES}, submitted_at=MESSAGE.submitted_at)
    with pytest.raises(MessageTooLarge):
        encode_message(big)


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", b"{}", b'{"job_id": 5}',
                                  b'{"job_id":"a","job_type":"t","customer_id":"c",'
                                  b'"submitted_at":"yesterday"}', b"\xff\xfe"])
def test_messages_decode_rejects_malformed(body: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(body)


def test_models_request_payload_defaults_to_empty_object() -> None:
    request = JobSubmissionRequest.model_validate({"job_type": "thumbnail", "customer_id": "c"})
    assert request.payload == {}


def test_models_request_schema_lists_job_types_and_forbids_extra() -> None:
    schema = JobSubmissionRequest.model_json_schema()
    assert schema["properties"]["job_type"]["enum"] == known_job_types()
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("customer_id", ["a?b", "a#b", "a\\b", "tab\there", "\x7f"])
def test_models_request_refuses_key_unsafe_customer_ids(customer_id: str) -> None:
    with pytest.raises(ValidationError):
        JobSubmissionRequest.model_validate({"job_type": "thumbnail", "customer_id": customer_id})


def test_models_request_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValidationError, match="NaN, Infinity"):
        JobSubmissionRequest.model_validate(
            json.loads('{"job_type":"thumbnail","customer_id":"c","payload":{"x":Infinity}}'))


@pytest.mark.parametrize(("value", "expected"), [
    ("0b7c6c1e-5b8a-4c39-9a53-3f1f4f0f3f11", True),
    ("0B7C6C1E-5B8A-4C39-9A53-3F1F4F0F3F11", False),
    ("{0b7c6c1e-5b8a-4c39-9a53-3f1f4f0f3f11}", False),
    ("0b7c6c1e5b8a4c399a533f1f4f0f3f11", False),
    ("", False),
])
def test_models_is_job_id_wants_canonical_uuid(value: str, expected: bool) -> None:
    assert is_job_id(value) is expected

"""Job status, the stored job record, and the models at the HTTP edge."""

from __future__ import annotations

import json
import sys
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from jobs.handlers import known_job_types, payload_model
from jobs.serial import clean_text


class JobStatus(StrEnum):
    """Where a job is in its life; stored explicitly on the row."""

    #: Written by the submit function; the message is on its way to the worker.
    ACCEPTED = "accepted"
    #: A worker delivery claimed the job and runs its handler.
    RUNNING = "running"
    #: The handler returned a result. Terminal.
    COMPLETED = "completed"
    #: The handler failed for good, or the message was poisoned. Terminal.
    FAILED = "failed"
    #: The client cancelled the job before it finished. Terminal.
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


# Every text a row stores is bounded, so no write can fail on the 64 KiB property limit.
#: The queue the submit writes and the worker reads, and where the host moves a message that
#: failed every delivery.
JOB_QUEUE = "job-requests"
POISON_QUEUE = f"{JOB_QUEUE}-poison"
MAX_ERROR_CODE = 64
MAX_ERROR_MESSAGE = 1024
MAX_PROGRESS_MESSAGE = 200


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a short machine-readable code and a sentence for people.

    Both are cut to a bounded length and cleaned of lone surrogates, so a handler's error
    text can always be stored and answered.
    """

    code: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", clean_text(self.code, MAX_ERROR_CODE))
        object.__setattr__(self, "message", clean_text(self.message, MAX_ERROR_MESSAGE))


@dataclass(frozen=True)
class Progress:
    """How far a running handler says it is: 0-100 and a short note."""

    percent: int
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", clean_text(self.message, MAX_PROGRESS_MESSAGE))


@dataclass(frozen=True)
class Claim:
    """Which queue delivery runs the job: the message id and its dequeue count."""

    message_id: str
    dequeue_count: int


@dataclass(frozen=True)
class JobRecord:
    """One job's status row, as the store reads and writes it."""

    job_id: str
    status: JobStatus
    job_type: str
    customer_id: str
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: JobError | None = None
    progress: Progress | None = None
    correlation_id: str = ""
    #: When a terminal job's row is purged.
    expires_at: datetime | None = None
    #: The partition key of the idempotency-key row that points at this job, if any.
    idempotency_row: str | None = None
    #: When a replay last queued the job's message again while it was accepted; None if
    #: only its submit did. The sweep counts a lost message's time to live from it.
    queued_at: datetime | None = None
    claim: Claim | None = field(default=None, compare=False)
    #: The W3C trace context of the job's submit (jobs.telemetry); "" on rows stored before
    #: jobs had one. Telemetry only: no decision reads it, so it takes no part in equality.
    traceparent: str = field(default="", compare=False)
    tracestate: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class JobMessage:
    """What the submit function puts on the queue and a handler receives."""

    job_id: str
    job_type: str
    customer_id: str
    payload: dict[str, Any]
    submitted_at: datetime
    correlation_id: str = ""
    #: A random nonce, part of the content the job id is a digest of (jobs.messages), so
    #: that ids are unique and unpredictable.
    token: str = field(default="", repr=False)
    #: The W3C trace context of the submit's span, which every delivery's span joins. Not
    #: part of the content the job id is a digest of (see jobs.messages).
    traceparent: str = ""
    tracestate: str = ""


class JobSubmissionRequest(BaseModel):
    """The body of POST /api/jobs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=lambda schema: _document_job_types(schema),
    )

    job_type: str = Field(description="A registered job type.", examples=["thumbnail"])
    # Table keys may not hold / \ # ? or control characters, and the id is a key part. The
    # OpenAPI document's pattern (customer_id_pattern) also leaves out each character that
    # _customer_id_text refuses on its own.
    customer_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^/\\#?\x00-\x1f\x7f-\x9f]+$",
        description="1-128 characters: none of / \\ # ? or control characters, no invisible, "
        "bidirectional-control, private-use, surrogate or unassigned code points (Unicode "
        "categories Cf, Zl, Zp, Co, Cs, Cn), in NFKC form (no look-alikes such as fullwidth "
        "letters), no whitespace at either end, and letters of one script (Latin may join Han with "
        "Hiragana and Katakana, Han with Bopomofo, or Han with Hangul): `сust-123` with a "
        "Cyrillic `с` is refused.",
        examples=["cust-123"],
    )
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="Job-specific input: checked against the job type's payload model when "
        "it declares one, else any JSON object, passed to the handler unchanged.",
        examples=[{"asset_url": "https://example.invalid/image.png"}],
    )

    @field_validator("job_type")
    @classmethod
    def _registered(cls, value: str) -> str:
        known = known_job_types()
        if value not in known:
            raise ValueError(f"unknown job_type {value!r}; known types: {', '.join(known)}")
        return value

    @field_validator("customer_id")
    @classmethod
    def _customer_id_text(cls, value: str) -> str:
        # Each of these would let one customer be stored under several ids that look the same.
        refused = next((c for c in value if unicodedata.category(c) in REFUSED_CATEGORIES), None)
        if refused is not None and unicodedata.category(refused) == "Cn":
            raise ValueError(f"customer_id must not contain U+{ord(refused):04X}: {UNASSIGNED}")
        if refused is not None:
            raise ValueError(f"customer_id must not contain U+{ord(refused):04X} (Unicode "
                             f"category {unicodedata.category(refused)}): invisible, "
                             "bidirectional-control, private-use and surrogate characters are "
                             "refused")
        if not unicodedata.is_normalized("NFKC", value):
            raise ValueError("customer_id must be in Unicode NFKC form: look-alike characters "
                             "such as fullwidth letters or ligatures are refused")
        if value[:1].isspace() or value[-1:].isspace():
            raise ValueError("customer_id must not start or end with whitespace")
        _one_script(value)
        return value

    @field_validator("payload")
    @classmethod
    def _plain_json(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            text.encode()
        except ValueError as e:  # UnicodeEncodeError is one too
            raise ValueError("payload must be plain JSON: NaN, Infinity and unpaired "
                             "surrogates (\\ud800) are not allowed") from e
        # job_type is absent when it failed its own check; its error is the one to report.
        model = payload_model(info.data.get("job_type", ""))
        if model is None:
            return value
        # Strict, as JSON: "10", 10.0 or true is no int, though a date or URL may be a string.
        # A ValidationError raised here keeps its field's place: ["payload", "width"].
        typed: dict[str, Any] = model.model_validate_json(text, strict=True).model_dump(
            mode="json")
        return typed


def is_job_id(value: str) -> bool:
    """Whether `value` is a job id as this app makes them: a lowercase canonical UUID."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _document_job_types(schema: dict[str, Any]) -> None:
    schema["properties"]["job_type"]["enum"] = known_job_types()


#: Unicode categories a customer_id may not hold: format characters (Cf: zero-width,
#: bidirectional controls, the BOM), line and paragraph separators, private use, surrogates,
#: and unassigned code points (Cn, noncharacters among them): a later Unicode version may give
#: one a look-alike or an NFKC form, as this Python's version knows them.
REFUSED_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
UNASSIGNED = "a code point Unicode has not assigned"
#: Scripts that may share one customer_id: Unicode TS #39's "Highly Restrictive" level
#: (section 5.2), where Latin may join the scripts a Chinese, Japanese or Korean name uses.
SCRIPT_SETS = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
               frozenset({"LATIN", "HAN", "BOPOMOFO"}),
               frozenset({"LATIN", "HAN", "HANGUL"}))
_SCRIPT_ALIASES = {"CJK": "HAN", "KATAKANA-HIRAGANA": "KATAKANA"}


def letter_script(char: str) -> str | None:
    """The script of a letter: the first word of its Unicode name (CJK ideographs are HAN).

    None for digits, marks, punctuation, symbols and spaces, which go with any script.
    """
    if not unicodedata.category(char).startswith("L"):
        return None
    first = unicodedata.name(char, "").split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(first, first)


def _one_script(value: str) -> None:
    scripts = {s for c in value if (s := letter_script(c)) is not None}
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in SCRIPT_SETS):
        return
    raise ValueError(f"customer_id must use letters of one script, not {', '.join(sorted(scripts))}"
                     ": mixed scripts let look-alikes such as a Cyrillic 'с' pass for a Latin 'c'")


@cache
def customer_id_pattern() -> str:
    """The documented pattern of a customer_id: no character the model refuses on its own.

    That is / \\ # ?, control characters, the refused categories, each character NFKC
    changes, and whitespace at either end. A sequence that NFKC composes (such as e + U+0301)
    and letters of mixed scripts escape the pattern: the model refuses them.
    """
    ranges: list[list[int]] = []
    for cp in range(sys.maxunicode + 1):
        # A lone surrogate is no character a regex engine can name (Rust's cannot at all); the
        # model refuses it all the same.
        if 0xD800 <= cp <= 0xDFFF or not _refused_alone(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    spans = "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}"
                    for a, b in ranges)
    # Whitespace the class above lets through may stand inside, never at either end.
    edge = "".join(_class_char(cp) for cp in range(sys.maxunicode + 1)
                   if chr(cp).isspace() and not _refused_alone(chr(cp)))
    return f"^[^{spans}{edge}](?:[^{spans}]*[^{spans}{edge}])?$"


def _refused_alone(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cn":
        # Which code points are unassigned differs by Unicode version, so the pattern, read
        # by other regex engines, names only the noncharacters, which never change.
        return is_noncharacter(char)
    if char in "/\\#?" or category == "Cc" or category in REFUSED_CATEGORIES:
        return True
    return unicodedata.normalize("NFKC", char) != char


def is_noncharacter(char: str) -> bool:
    """Whether `char` is one of Unicode's 66 noncharacters (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF)."""
    cp = ord(char)
    return 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE


def _class_char(cp: int) -> str:
    # \uXXXX reads the same in ECMA-262 and Python regexes; past the BMP they share no
    # escape, so such a character stands as itself (none of them is special in a class).
    if cp <= 0xFFFF and not (chr(cp).isascii() and chr(cp).isalnum()):
        return f"\\u{cp:04x}"
    return chr(cp)


class JobAccepted(BaseModel):
    """The 202 answer to a submit."""

    status: Literal["accepted"] = "accepted"
    job_id: str = Field(examples=["0b7c6c1e-5b8a-4c39-9a53-3f1f4f0f3f11"])
    status_url: str = Field(examples=["http://localhost:7071/api/jobs/0b7c6c1e-..."])


class JobErrorView(BaseModel):
    code: str
    message: str


class ProgressView(BaseModel):
    percent: int = Field(ge=0, le=100)
    message: str


class JobView(BaseModel):
    """The job record as GET /api/jobs/{job_id} shows it."""

    job_id: str
    status: JobStatus
    job_type: str
    customer_id: str
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int
    result: dict[str, Any] | None = None
    error: JobErrorView | None = None
    progress: ProgressView | None = None
    correlation_id: str
    expires_at: datetime | None = None

    @classmethod
    def of(cls, record: JobRecord) -> JobView:
        """Build the public view of a stored record, dropping internal fields."""
        error = progress = None
        if record.error is not None:
            error = JobErrorView(code=record.error.code, message=record.error.message)
        if record.progress is not None:
            progress = ProgressView(
                percent=record.progress.percent, message=record.progress.message)
        return cls(
            job_id=record.job_id,
            status=record.status,
            job_type=record.job_type,
            customer_id=record.customer_id,
            submitted_at=record.submitted_at,
            updated_at=record.updated_at,
            started_at=record.started_at,
            completed_at=record.completed_at,
            attempts=record.attempts,
            result=record.result,
            error=error,
            progress=progress,
            correlation_id=record.correlation_id,
            expires_at=record.expires_at,
        )


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: the azure-functions-validation envelope."""

    detail: list[ErrorDetail]
    error_format_version: int = 1

"""The queue message codec, the output values the worker encodes, and polling back-off (pure)."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from devhost.errors import MessageDecodeError
from devhost.queues import Backoff
from devhost.storage import decode_message, encode_message
from devhost.worker import queue_output_bodies


def test_base64_encoding_round_trips_text_and_binary() -> None:
    assert encode_message("héllo".encode(), "base64") == "aMOpbGxv"
    assert decode_message("aMOpbGxv", "base64") == "héllo".encode()
    assert decode_message(encode_message(b"\x00\xff", "base64"), "base64") == b"\x00\xff"


@pytest.mark.parametrize("text", ["not base64!", "abc", "héllo"])
def test_base64_decoding_rejects_text_that_is_not_base64(text: str) -> None:
    with pytest.raises(MessageDecodeError):
        decode_message(text, "base64")


def test_none_encoding_passes_text_through() -> None:
    assert encode_message(b'{"a": 1}', "none") == '{"a": 1}'
    assert decode_message("not base64!", "none") == b"not base64!"


def test_str_or_bytes_output_annotation_sends_the_value_itself() -> None:
    # functions.py binds Out[str]/Out[bytes] through the worker's GenericBinding.
    assert queue_output_bodies("generic", "one") == [b"one"]
    assert queue_output_bodies("generic", b"\x01") == [b"\x01"]
    with pytest.raises(TypeError):
        queue_output_bodies("generic", ["a", "b"])


def test_queue_message_output_is_sent_as_json() -> None:
    # QueueMessageOutConverter.encode (azure-functions): a QueueMessage becomes the JSON
    # {"id", "body"}, not its body.
    [sent] = queue_output_bodies("queue", func.QueueMessage(id="m1", body="hello"))
    assert json.loads(sent) == {"id": "m1", "body": "hello"}


def test_list_output_sends_one_message_per_str_or_queue_message() -> None:
    sent = queue_output_bodies("queue", ["a", func.QueueMessage(body="c")])
    assert sent[0] == b"a"
    assert json.loads(sent[1]) == {"id": None, "body": "c"}


def test_bytes_inside_a_list_output_are_refused() -> None:
    # QueueMessageOutConverter.encode: "invalid data type in output queue message list".
    with pytest.raises(NotImplementedError, match="invalid data type"):
        queue_output_bodies("queue", ["a", b"b"])


def test_other_output_values_are_refused() -> None:
    with pytest.raises(NotImplementedError):
        queue_output_bodies("queue", 42)


def test_polling_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_delay() for _ in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_polling_backoff_never_exceeds_a_small_maximum() -> None:
    assert Backoff(0.1, 0.05).next_delay() == pytest.approx(0.05)

"""The queue message codec, output values and polling back-off (pure)."""

from __future__ import annotations

import azure.functions as func
import pytest

from devhost.errors import MessageDecodeError
from devhost.queues import Backoff
from devhost.storage import decode_message, encode_message, message_bodies


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


def test_message_bodies_accept_str_bytes_queue_messages_and_lists() -> None:
    assert message_bodies("one") == [b"one"]
    assert message_bodies(b"\x01") == [b"\x01"]
    assert message_bodies(["a", b"b", func.QueueMessage(body="c")]) == [b"a", b"b", b"c"]


def test_message_bodies_reject_other_types() -> None:
    with pytest.raises(TypeError):
        message_bodies({"not": "a message"})


def test_polling_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_delay() for _ in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_polling_backoff_never_exceeds_a_small_maximum() -> None:
    assert Backoff(0.1, 0.05).next_delay() == pytest.approx(0.05)

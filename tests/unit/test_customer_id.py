"""customer_id: the model's refusals, and the documented pattern that states them."""

from __future__ import annotations

import re
import sys

import pytest
from pydantic import ValidationError

from jobs.models import JobSubmissionRequest, customer_id_pattern

SURROGATES = range(0xD800, 0xE000)


def accepted(customer_id: str) -> bool:
    try:
        JobSubmissionRequest(job_type="thumbnail", customer_id=customer_id)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", ["cust\u200b-123", "\ufeffcust-123", "ｃｕｓｔ-123",
                                   "cust\u202e321", "a\u2029b", "a\U000f0000", "\u2168",
                                   "e\u0301"])
def test_customer_id_refuses_invisible_bidi_private_and_non_nfkc(value: str) -> None:
    assert not accepted(value)


def test_customer_id_pattern_refuses_exactly_what_the_model_refuses_per_character() -> None:
    pattern = re.compile(customer_id_pattern())
    sample = [*range(0, 0x10000, 3), *range(0x10000, sys.maxunicode + 1, 97),
              0x200B, 0xFEFF, 0xFF43, 0x202E, 0xE000, 0x10FFFD, 0x1D400, 0xE0001]
    mismatched = [hex(cp) for cp in sample if cp not in SURROGATES
                  and (pattern.fullmatch(f"x{chr(cp)}x") is not None) != accepted(f"x{chr(cp)}x")]
    assert mismatched == []

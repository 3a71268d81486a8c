"""customer_id: the model's refusals, and the documented pattern that states them."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from pydantic import ValidationError

from jobs.models import JobSubmissionRequest, customer_id_pattern, is_noncharacter

SURROGATES = range(0xD800, 0xE000)


def accepted(customer_id: str) -> bool:
    try:
        JobSubmissionRequest(job_type="thumbnail", customer_id=customer_id)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", ["cust\u200b-123", "\ufeffcust-123", "ｃｕｓｔ-123",
                                   "cust\u202e321", "a\u2029b", "a\U000f0000", "\u2168",
                                   "e\u0301", "cust\uffff", "cust\ufdd0", "a\U0010fffe",
                                   "cust\u0378", "a\U000e0080"])
def test_customer_id_refuses_invisible_bidi_private_unassigned_and_non_nfkc(value: str) -> None:
    assert not accepted(value)


def test_customer_id_pattern_refuses_exactly_what_the_model_refuses_per_character() -> None:
    # Between digits, which belong to no script, so that the one-script rule (which a regex
    # cannot state) plays no part. Unassigned code points other than the noncharacters are
    # the model's alone: which they are depends on the Unicode version.
    pattern = re.compile(customer_id_pattern())
    sample = [*range(0, 0x10000, 3), *range(0x10000, sys.maxunicode + 1, 97),
              0x200B, 0xFEFF, 0xFF43, 0x202E, 0xE000, 0x10FFFD, 0x1D400, 0xE0001,
              0xFDD0, 0xFFFE, 0x10FFFF]
    mismatched = [hex(cp) for cp in sample if cp not in SURROGATES
                  and (unicodedata.category(chr(cp)) != "Cn" or is_noncharacter(chr(cp)))
                  and (pattern.fullmatch(f"1{chr(cp)}1") is not None) != accepted(f"1{chr(cp)}1")]
    assert mismatched == []
    assert all(not pattern.fullmatch(f"1{chr(cp)}1") for cp in (0xFDD0, 0xFFFE, 0x10FFFF))


@pytest.mark.parametrize("value", [
    "\u0441ust-123",          # Cyrillic es, then Latin: looks like cust-123
    "cust-12\u0417",          # Latin with a Cyrillic Ze, which looks like 3
    "p\u0430ypal",            # Latin with a Cyrillic a
    "\u03bfrder-1",           # Greek omicron, then Latin
    "\u0441\u044b\u0440-\u03b1",  # Cyrillic with a Greek alpha
    "\u0645\u0631\u062d\u0628\u0627a",  # Arabic with a Latin a
])
def test_customer_id_refuses_letters_of_mixed_scripts(value: str) -> None:
    with pytest.raises(ValidationError, match="one script"):
        JobSubmissionRequest(job_type="thumbnail", customer_id=value)


@pytest.mark.parametrize("value", [
    "cust-123", "CUST 123", "\u0441\u044b\u0440-123",   # all Latin; all Cyrillic with digits
    "\u03b1\u03b2\u03b3.7", "\u0645\u0631\u062d\u0628\u0627",  # Greek; Arabic
    "\u682a\u5f0f\u4f1a\u793e\u30c6\u30b9\u30c8",       # Han with Katakana (Japanese)
    "ACME-\u682a\u5f0f\u4f1a\u793e",                       # Latin with Han
    "\ud55c\uad6d-\u5927\u97d3",                           # Hangul with Han (Korean)
    "caf\u00e9", "stra\u00dfe_1", "a  b",              # precomposed letters; inner spaces
])
def test_customer_id_accepts_one_script_and_the_cjk_combinations(value: str) -> None:
    assert accepted(value)


@pytest.mark.parametrize("value", [" cust-123", "cust-123 ", " ", "   ", "\u1680cust",
                                   "cust\u1680", "\tcust", ""])
def test_customer_id_refuses_whitespace_at_either_end_and_blank(value: str) -> None:
    assert not accepted(value)
    assert re.fullmatch(customer_id_pattern(), value) is None

"""decode_json: an integer field takes a JSON number whose exact value is an integer (5.0, 5e2) and
nothing rounded; free JSON (a trusted write's metadata) comes through as the client wrote it."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from app.api.moderation_data import AdjustRequest
from app.api.trusted_data import ScoreWriteRequest
from app.decoding import decode_json, decoder_for
from app.errors import ValidationFailed
from app.live.messages import Subscribe, decode

WRITE = decoder_for(ScoreWriteRequest)
ADJUST = decoder_for(AdjustRequest)


def write(score: str, rest: str = "") -> ScoreWriteRequest:
    return decode_json(f'{{"userId": "f1", "score": {score}{rest}}}', WRITE)


def refused(text: str, decoder: msgspec.json.Decoder[Any] = WRITE) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        decode_json(text, decoder)
    assert (caught.value.status, caught.value.code) == (400, "VALIDATION_ERROR")
    return caught.value


def test_an_integer_field_takes_a_literal_whose_exact_value_is_an_integer() -> None:
    for text, value in (
        ("5.0", 5),
        ("5e2", 500),
        ("5E+2", 500),
        ("1.00e1", 10),
        ("-0.0", 0),
        ("9007199254740992.0", 2**53),
        ("-9007199254740992.000", -(2**53)),
        ("9.007199254740992e15", 2**53),
    ):
        request = write(text, ', "subscore": 2.0')
        assert (request.score, request.subscore) == (value, 2), text
        assert type(request.score) is int and type(request.subscore) is int
    assert decode_json('{"delta": -2.5e1, "reason": "typo"}', ADJUST).delta == -25
    # The exact value, checked against the field's own bounds (here up to 2^63 - 1), not rounded.
    message = decode('{"type": "subscribe", "channel": "notifications", "after": 9007199254740993.0}')
    assert isinstance(message, Subscribe) and message.after == 2**53 + 1
    message = decode('{"type": "subscribe", "channel": "ranks", "from": 1e1, "to": 2.0e1, "maxRate": 0.5}')
    assert isinstance(message, Subscribe)
    assert (message.first, message.last, message.max_rate) == (10, 20, 0.5)


@pytest.mark.parametrize(
    "text",
    [
        '{"userId": "f1", "score": 9007199254740993.0}',
        '{"userId": "f1", "score": -9007199254740993.0}',
        '{"userId": "f1", "score": 9007199254740992.5}',
        '{"userId": "f1", "score": 0.99999999999999999}',
        '{"userId": "f1", "score": 1.0000000000000000001}',
        '{"userId": "f1", "score": 5, "subscore": 9007199254740993.0}',
        '{"userId": "f1", "score": 5, "subscore": 9007199254740992.5}',
    ],
)
def test_an_integer_field_refuses_a_literal_that_is_not_an_exact_integer_within_range(text: str) -> None:
    refused(text)


@pytest.mark.parametrize("delta", ["9007199254740993.0", "-9007199254740993.0", "0.99999999999999999"])
def test_an_adjustment_refuses_a_delta_that_is_not_an_exact_integer_within_range(delta: str) -> None:
    refused(f'{{"delta": {delta}, "reason": "typo"}}', ADJUST)


def test_an_out_of_range_integer_field_names_its_field() -> None:
    assert "$.score" in str(refused('{"userId": "f1", "score": 9007199254740993.0}').details)


def test_a_huge_exponent_is_answered_at_once() -> None:
    started = time.monotonic()
    for score in ("1e1000000000", "-1e1000000000", "1e-1000000000", "1e4300"):
        refused(f'{{"userId": "f1", "score": {score}}}')
    refused('{"userId": "f1", "score": 5.0, "metadata": {"x": 1e999999999}}')
    assert write("0e1000000000").score == 0
    assert time.monotonic() - started < 1


def test_metadata_comes_through_as_sent() -> None:
    rest = ', "metadata": {"x": 1.0, "y": [2.50, 1e2, -0.0], "z": {"n": 3, "m": 0.1}}'
    for score in ("5", "5.0"):  # the strict pass, and the second one an integer field written 5.0 takes
        metadata = write(score, rest).metadata
        assert metadata == {"x": 1.0, "y": [2.5, 100.0, -0.0], "z": {"n": 3, "m": 0.1}}
        assert metadata is not None
        assert msgspec.json.encode(metadata) == b'{"x":1.0,"y":[2.5,100.0,-0.0],"z":{"n":3,"m":0.1}}'


@pytest.mark.parametrize("score", ["5", "5.0"])
@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E+309"])
def test_metadata_refuses_a_number_beyond_what_json_numbers_hold(score: str, number: str) -> None:
    error = refused(f'{{"userId": "f1", "score": {score}, "metadata": {{"a": [{{"x": {number}}}]}}}}')
    assert "Number out of range" in str(error.details) and "$.metadata" in str(error.details)

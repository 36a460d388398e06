"""Untrusted JSON in: what decoding it can raise, and one decode that turns all of it into a 400."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from .errors import ValidationFailed

T = TypeVar("T")

# Besides an answer, decoding untrusted JSON raises one of these: malformed JSON or the wrong
# shape (msgspec.ValidationError is a DecodeError), bytes that are not UTF-8, or nesting deeper
# than the interpreter's stack (a few kilobytes of brackets).
UNREADABLE: tuple[type[Exception], ...] = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decoder_for(model: type[T]) -> msgspec.json.Decoder[T]:
    """A decoder of `model`, made once per model."""
    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = msgspec.json.Decoder(model)
    return decoder


def decode_json(data: bytes | str, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode and validate; VALIDATION_ERROR saying what is wrong for any other input."""
    try:
        # msgspec checks UTF-8 only in the strings it keeps; JSON is UTF-8 throughout.
        return decoder.decode(data.decode() if isinstance(data, bytes) else data)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(details=str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed("Not valid JSON", details=str(exc)) from None
    except UnicodeDecodeError:
        raise ValidationFailed("Not valid UTF-8") from None
    except RecursionError:
        raise ValidationFailed("JSON is nested too deeply") from None

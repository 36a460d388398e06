"""Untrusted input in: what decoding JSON can raise, one decode that turns all of it into a 400,
and the conversion of query and path strings."""

from __future__ import annotations

import re
from collections.abc import Mapping
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


_SAFE_INTEGER = 2**53


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) <= _SAFE_INTEGER else value


# Reads JSON numbers written with a fraction or exponent as integers when they are whole (5.0, 1e3).
_whole_numbers = msgspec.json.Decoder(float_hook=_number)


def decode_json(data: bytes | str, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode and validate; VALIDATION_ERROR saying what is wrong for any other input. An integer
    field takes a whole number written as `5.0` or `5e0`, as JSON Schema (and so the OpenAPI
    document) counts it an integer."""
    try:
        # msgspec checks UTF-8 only in the strings it keeps; JSON is UTF-8 throughout.
        text = data.decode() if isinstance(data, bytes) else data
        try:
            return decoder.decode(text)
        except msgspec.ValidationError as exc:
            # The common case stays one strict pass; only a refused input is read a second time.
            try:
                converted: T = msgspec.convert(_whole_numbers.decode(text), decoder.type)
            except msgspec.ValidationError:
                raise exc from None
            return converted
    except msgspec.ValidationError as exc:
        raise ValidationFailed(details=str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed("Not valid JSON", details=str(exc)) from None
    except UnicodeDecodeError:
        raise ValidationFailed("Not valid UTF-8") from None
    except RecursionError:
        raise ValidationFailed("JSON is nested too deeply") from None


_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_integer_fields: dict[type, tuple[str, ...]] = {}


def _is_integer(info: msgspec.inspect.Type) -> bool:
    # A description or examples wrap the type in Metadata; the constraints (ge, le) do not. An
    # optional integer is a union with None.
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_integer(t) for t in info.types)
    return isinstance(info, msgspec.inspect.IntType)


def _integers(model: type) -> tuple[str, ...]:
    """The names, as sent, of a model's integer fields; worked out once per model."""
    names = _integer_fields.get(model)
    if names is None:
        info = msgspec.inspect.type_info(model)
        fields = info.fields if isinstance(info, msgspec.inspect.StructType) else ()
        names = _integer_fields[model] = tuple(f.encode_name for f in fields if _is_integer(f.type))
    return names


def convert_strings(values: Mapping[str, str], model: type[T]) -> T:
    """Query or path parameters as `model` (strings converted to the declared types); VALIDATION_ERROR
    otherwise. An integer is written in decimal digits and nothing else: msgspec's lax conversion
    would also take `1e2` or `5.0`."""
    for name in _integers(model):
        raw = values.get(name)
        if raw is not None and not _DECIMAL.fullmatch(raw):
            raise ValidationFailed(details=f"Expected a decimal integer - at `$.{name}`")
    try:
        return msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(details=str(exc)) from None

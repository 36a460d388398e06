"""Untrusted input in: what decoding JSON can raise, one decode that turns all of it into a 400,
and the conversion of query and path strings."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
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


# The second reading of a refused body sees each JSON number written with a fraction or an exponent
# exactly, as a Decimal; `_exact` then makes it what the model expects at that place.
_exact_numbers = msgspec.json.Decoder(float_hook=Decimal)
_type_infos: dict[Any, msgspec.inspect.Type] = {}
_FREE = msgspec.inspect.AnyType()
# An integer written with more digits than this is out of range for any field (and int() of
# `1e1000000000` would take the process's memory).
_MAX_INTEGER_DIGITS = 1000
_FIELDS = (msgspec.inspect.StructType, msgspec.inspect.TypedDictType, msgspec.inspect.DataclassType)
_ITEMS = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)


def _type_info(model: Any) -> msgspec.inspect.Type:
    info = _type_infos.get(model)
    if info is None:
        info = _type_infos[model] = msgspec.inspect.type_info(model)
    return info


def _members(info: msgspec.inspect.Type) -> list[msgspec.inspect.Type]:
    """The types a value at this place may have: a union's members, without descriptions or bounds
    around them (msgspec checks those when it converts)."""
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        return [m for t in info.types for m in _members(t)]
    return [info]


def _out_of_range(path: str) -> msgspec.ValidationError:
    return msgspec.ValidationError(f"Number out of range - at `{path}`")


def _number(value: Decimal, members: list[msgspec.inspect.Type], path: str) -> Any:
    """An integer where the model takes one (and not a float) and the literal's exact value is an
    integer (5.0, 5e2, not 0.99999999999999999); a Decimal where it takes one; a float elsewhere,
    as the strict decode reads it, refused when beyond a float's range rather than infinite."""
    kinds = {type(m) for m in members}
    if msgspec.inspect.IntType in kinds and msgspec.inspect.FloatType not in kinds:
        if value and value.adjusted() >= _MAX_INTEGER_DIGITS:
            raise _out_of_range(path)
        if value == value.to_integral_value():
            return int(value)  # out of the field's bounds: msgspec.convert refuses it
    if msgspec.inspect.DecimalType in kinds:
        return value
    number = float(value)
    if math.isinf(number):
        raise _out_of_range(path)
    return number


def _exact(value: Any, info: msgspec.inspect.Type, path: str = "$") -> Any:
    """`value` as read with Decimals, with each Decimal made what `info` expects at its place."""
    members = _members(info)
    if isinstance(value, Decimal):
        return _number(value, members, path)
    if isinstance(value, dict):
        for m in members:
            if isinstance(m, _FIELDS):
                tag = getattr(m, "tag_field", None)
                if tag is None or value.get(tag) == getattr(m, "tag", None):
                    fields = {f.encode_name: f.type for f in m.fields}
                    return {k: _exact(v, fields.get(k, _FREE), f"{path}.{k}") for k, v in value.items()}
            if isinstance(m, (msgspec.inspect.DictType, msgspec.inspect.FrozenDictType)):
                return {k: _exact(v, m.value_type, f"{path}[...]") for k, v in value.items()}
        return {k: _exact(v, _FREE, f"{path}[...]") for k, v in value.items()}
    if isinstance(value, list):
        for m in members:
            if isinstance(m, (*_ITEMS, msgspec.inspect.VarTupleType)):
                return [_exact(v, m.item_type, f"{path}[{i}]") for i, v in enumerate(value)]
            if isinstance(m, msgspec.inspect.TupleType) and len(m.item_types) == len(value):
                return [_exact(v, t, f"{path}[{i}]") for i, (v, t) in enumerate(zip(value, m.item_types, strict=True))]
        return [_exact(v, _FREE, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def decode_json(data: bytes | str, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode and validate; VALIDATION_ERROR saying what is wrong for any other input. An integer
    field takes a number written `5.0` or `5e0` when its exact value is an integer, as JSON Schema
    (and so the OpenAPI document) counts it an integer; `0.99999999999999999` or
    `9007199254740993.0` is not rounded into one. Elsewhere (free JSON such as metadata) a number
    stays as written, `1.0` a float; one beyond a float's range (`1e400`) is refused."""
    try:
        # msgspec checks UTF-8 only in the strings it keeps; JSON is UTF-8 throughout.
        text = data.decode() if isinstance(data, bytes) else data
        try:
            return decoder.decode(text)
        except msgspec.ValidationError:
            # The common case stays one strict pass; only a refused input is read a second time,
            # and a refusal of that reading says what is wrong with the exact values.
            exact = _exact(_exact_numbers.decode(text), _type_info(decoder.type))
            converted: T = msgspec.convert(exact, decoder.type)
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

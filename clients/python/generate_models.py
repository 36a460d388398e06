"""Write the SDK's models.py from the server's OpenAPI document, so that they are the server's:

    python clients/python/generate_models.py http://127.0.0.1:8080/api/openapi.json \
        > clients/python/src/scoreboard_client/models.py

(a saved document's path works as well as the URL). It renders every schema that an operation's
request body or answer reaches as a msgspec Struct; the document's value limits (lengths, patterns,
ranges) stay the server's to enforce."""

from __future__ import annotations

import json
import keyword
import re
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

# The action catalog is each server's configuration, listed as an enum in its document
# (app/api/openapi.py `_catalog`); the SDK takes any action type.
CONFIGURED = {("InitializeRequest", "actionType")}
REF_PREFIX = "#/components/schemas/"
SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
WIDTH = 96  # of docstring lines, within the line length of the project's formatter
LINE_LENGTH = 120  # the project's formatter's

HEADER = '''"""Request and response models of the Scoreboard API, generated from the server's OpenAPI document
by clients/python/generate_models.py: regenerate it rather than edit it."""

from __future__ import annotations

{typing}import msgspec


class _Model(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Fields are snake_case here and camelCase on the wire."""
'''


def load(source: str) -> dict[str, Any]:
    """The document at a URL or in a file."""
    if source.startswith(("http://", "https://")):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local
        with opener.open(source, timeout=10) as answer:
            doc: dict[str, Any] = json.load(answer)
            return doc
    with open(source, encoding="utf-8") as file:
        doc = json.load(file)
        return doc


def _refs(node: Any) -> Iterator[str]:
    """Names of the schemas a part of the document refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def reachable(doc: dict[str, Any]) -> list[str]:
    """The schemas the operations' bodies and answers reach, sorted by name (the models of path,
    query and header parameters are in the document too, as parameters)."""
    schemas = doc["components"]["schemas"]
    found: set[str] = set()
    todo = list(_refs(doc["paths"]))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(_refs(schemas[name]))
    return sorted(found)


def _literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def annotation(schema: dict[str, Any]) -> str:
    """The Python type of a property's schema."""
    if "$ref" in schema:
        return str(schema["$ref"]).removeprefix(REF_PREFIX)
    if "anyOf" in schema:
        parts = [annotation(part) for part in schema["anyOf"]]
        if "Any" in parts:
            return "Any"
        return " | ".join(dict.fromkeys(p for p in parts if p != "None")) + (" | None" if "None" in parts else "")
    if "enum" in schema:
        return "Literal[" + ", ".join(_literal(v) for v in schema["enum"]) + "]"
    if "const" in schema:
        return f"Literal[{_literal(schema['const'])}]"
    kind = schema.get("type")
    if kind is None:
        return "Any"  # any JSON value
    if kind == "array":
        return f"list[{annotation(schema.get('items', {}))}]"
    if kind == "object":
        if "properties" in schema:
            raise ValueError(f"an object schema inside a property is not supported: {schema}")
        return "dict[str, Any]"
    if kind in SCALARS:
        return SCALARS[kind]
    raise ValueError(f"no Python type for {schema}")


def _camel(name: str) -> str:
    """msgspec's `rename="camel"` of a field name."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field_line(owner: str, wire: str, schema: dict[str, Any], required: bool) -> tuple[str, str]:
    """One field of a Struct (its snake_case name, type and default, its wire name when the
    rename would not give it) and its type."""
    if (owner, wire) in CONFIGURED:
        schema = {k: v for k, v in schema.items() if k != "enum"}
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", wire).lower()
    if keyword.iskeyword(name):
        name += "_"
    kind = annotation(schema)
    if not required and "default" not in schema:
        kind, default = f"{kind} | msgspec.UnsetType", "msgspec.UNSET"
    elif "default" in schema:
        value = schema["default"]
        if isinstance(value, list | dict):
            raise ValueError(f"a mutable default is not supported: {owner}.{wire}")
        default = _literal(value)
    else:
        default = None
    if _camel(name) != wire:
        args = ([f"default={default}"] if default is not None else []) + [f"name={json.dumps(wire)}"]
        return f"    {name}: {kind} = msgspec.field({', '.join(args)})", kind
    line = f"    {name}: {kind}" + (f" = {default}" if default is not None else "")
    if len(line) > LINE_LENGTH and kind.startswith("Literal[") and kind.endswith("]"):
        # As the project's formatter writes a subscript too long for one line: its items on one
        # line of their own, or one a line when that is too long as well.
        items = kind.removeprefix("Literal[").removesuffix("]")
        inner = [f"        {items}"] if len(items) + 8 <= LINE_LENGTH else [f"        {v}," for v in items.split(", ")]
        tail = "    ]" + (f" = {default}" if default is not None else "")
        line = "\n".join([f"    {name}: Literal[", *inner, tail])
    return line, kind


def docstring(text: str) -> list[str]:
    """A class docstring's lines, wrapped."""
    lines = textwrap.wrap(" ".join(text.split()).replace('"""', "'''"), WIDTH)
    lines[0] = '    """' + lines[0]
    lines[1:] = ["    " + line for line in lines[1:]]
    lines[-1] += '"""'
    return lines


def struct(name: str, schema: dict[str, Any]) -> tuple[str, set[str]]:
    """A Struct of an object schema, and the names of `typing` its fields use."""
    if schema.get("type") != "object":
        raise ValueError(f"{name} is not an object schema")
    lines = [f"class {name}(_Model):"]
    if "description" in schema:
        lines += docstring(schema["description"])
        lines.append("")
    required = set(schema.get("required", []))
    used: set[str] = set()
    for wire, prop in schema.get("properties", {}).items():
        line, kind = field_line(name, wire, prop, wire in required)
        lines.append(line)
        used |= {n for n in ("Any", "Literal") if re.search(rf"\b{n}\b", kind)}
    if lines[-1] == "":  # a docstring and no fields
        lines.pop()
    elif len(lines) == 1:
        lines.append("    pass")
    return "\n".join(lines), used


def render(doc: dict[str, Any]) -> str:
    """The text of models.py."""
    schemas = doc["components"]["schemas"]
    structs = [struct(name, schemas[name]) for name in reachable(doc)]
    body = "\n\n\n".join(text for text, _ in structs)
    names = sorted(set().union(*(used for _, used in structs)))
    typing = f"from typing import {', '.join(names)}\n\n" if names else ""
    return HEADER.format(typing=typing) + "\n\n" + body + "\n"


def main(argv: list[str]) -> int:
    """Print the models of the document named on the command line."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(render(load(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The Python SDK cannot drift from the server: its REST models are what the generator makes of the
server's OpenAPI document, its live messages read everything the server's send, the server accepts
what it subscribes with, and every error code of the server has its exception."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest
from scoreboard_client import errors as sdk_errors
from scoreboard_client import messages as sdk_messages
from scoreboard_client.live import subscriptions

from app import errors as server_errors
from app.live import messages as server_messages

from .real_servers import ROOT, ServerProcess
from .sdk_server import running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The module's running server."""
    yield from running(tmp_path_factory)


SDK = ROOT / "clients" / "python"


def test_models_are_generated_from_the_servers_document(server: ServerProcess) -> None:
    generated = subprocess.run(
        [sys.executable, str(SDK / "generate_models.py"), server.url + "/api/openapi.json"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    committed = (SDK / "src" / "scoreboard_client" / "models.py").read_text()
    assert generated == committed, "regenerate the models: see clients/python/generate_models.py"


def _bare(kind: mi.Type) -> mi.Type:
    return kind.type if isinstance(kind, mi.Metadata) else kind


def fits(server: mi.Type, sdk: mi.Type, where: str) -> list[str]:
    """Why what the server sends as `server` would not decode as `sdk` (nothing when it would);
    value limits aside."""
    server, sdk = _bare(server), _bare(sdk)
    if isinstance(sdk, mi.AnyType):
        return []
    if isinstance(server, mi.UnionType):
        return [problem for option in server.types for problem in fits(option, sdk, where)]
    if isinstance(sdk, mi.UnionType):
        if any(not fits(server, option, where) for option in sdk.types):
            return []
        return [f"{where}: the server sends {server}, which is none of the SDK's {sdk}"]
    if isinstance(server, mi.StructType) and isinstance(sdk, mi.StructType):
        return struct_fits(server, sdk, where)
    if isinstance(server, mi.ListType) and isinstance(sdk, mi.ListType):
        return fits(server.item_type, sdk.item_type, f"{where}[]")
    if isinstance(server, mi.LiteralType) and isinstance(sdk, mi.LiteralType):
        return [] if set(server.values) <= set(sdk.values) else [f"{where}: {server.values} vs {sdk.values}"]
    if isinstance(server, mi.LiteralType) and isinstance(sdk, mi.StrType):
        return [] if all(isinstance(v, str) for v in server.values) else [f"{where}: {server.values} are not text"]
    if type(server) is type(sdk) or (isinstance(server, mi.IntType) and isinstance(sdk, mi.FloatType)):
        return []
    return [f"{where}: the server sends {type(server).__name__}, the SDK reads {type(sdk).__name__}"]


def struct_fits(server: mi.StructType, sdk: mi.StructType, where: str) -> list[str]:
    """Every field the server sends is read, with a type that fits; the SDK requires no other."""
    problems = [] if server.tag == sdk.tag else [f"{where}: type {server.tag!r} vs {sdk.tag!r}"]
    ours = {field.encode_name: field for field in sdk.fields}
    for field in server.fields:
        mine = ours.pop(field.encode_name, None)
        if mine is None:
            problems.append(f"{where}.{field.encode_name}: the SDK does not read it")
            continue
        if mine.required and not field.required:
            problems.append(f"{where}.{field.encode_name}: the SDK requires it, the server may leave it out")
        problems += fits(field.type, mine.type, f"{where}.{field.encode_name}")
    problems += [
        f"{where}.{name}: the SDK requires it, the server never sends it" for name, f in ours.items() if f.required
    ]
    return problems


def test_live_messages_read_everything_the_server_sends() -> None:
    served = _bare(mi.type_info(server_messages.ServerMessage))
    assert isinstance(served, mi.UnionType)
    known = {cls.__struct_config__.tag: cls for cls in sdk_messages.KNOWN}
    problems: list[str] = []
    for message in served.types:
        assert isinstance(message, mi.StructType)
        if message.tag not in known:
            problems.append(f"{message.tag}: the SDK has no message of this type")
            continue
        problems += fits(message, mi.type_info(known[message.tag]), str(message.tag))
    assert problems == []


def test_the_comparison_finds_a_difference() -> None:
    class Narrow(msgspec.Struct, tag="x", tag_field="type"):
        rank: int
        name: str | None

    class Wide(msgspec.Struct, tag="x", tag_field="type"):
        rank: int | None
        name: str | None = None
        extra: str = ""

    class Wrong(msgspec.Struct, tag="x", tag_field="type"):
        rank: str
        extra: int

    assert fits(mi.type_info(Narrow), mi.type_info(Wide), "x") == []
    assert fits(mi.type_info(Narrow), mi.type_info(Wrong), "x") == [
        "x.rank: the server sends IntType, the SDK reads StrType",
        "x.name: the SDK does not read it",
        "x.extra: the SDK requires it, the server never sends it",
    ]


def test_the_server_accepts_what_the_sdk_sends() -> None:
    # Today's server knows the leaderboard channel; the windows and the notices are being added.
    for board in (None, "weekly"):
        (leaderboard,) = subscriptions(
            board=board, around=None, ranks=None, notifications=False, after=None, max_rate=None
        )
        subscribe = server_messages.decode(msgspec.json.encode(leaderboard))
        assert subscribe == server_messages.Subscribe(channel="leaderboard", board=board)
    auth = server_messages.decode(msgspec.json.encode({"type": "auth", "token": "t"}))
    assert auth == server_messages.Auth(token="t")


def _subclasses(cls: type[server_errors.ApiError]) -> list[type[server_errors.ApiError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def test_every_error_code_of_the_server_has_its_exception() -> None:
    served = {(cls.status, cls.code) for cls in _subclasses(server_errors.ApiError)}
    assert len(served) >= 20
    mapped = {(status, code): sdk_errors.error_class(status, code) for status, code in served}
    assert {key: (cls.status_code, cls.error_code) for key, cls in mapped.items()} == {key: key for key in served}


def python_examples() -> dict[str, str]:
    """The README's Python SDK examples, by the file name each one's first line gives it."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python") : readme.index("### JavaScript")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    names = [re.match(r"# (\w+\.py)", block) for block in blocks]
    named = {name[1]: block for name, block in zip(names, blocks, strict=True) if name}
    assert len(named) == len(blocks) >= 3, "every example starts with `# NAME.py` of its own"
    return named


def test_the_readmes_examples_are_mypy_strict_clean(tmp_path: Path) -> None:
    # The README calls the SDK mypy --strict clean: its examples must be, as a user copies them.
    for name, code in python_examples().items():
        (tmp_path / name).write_text(code)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".cache"), *python_examples()],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(SDK / "src")},  # this checkout's SDK, not an installed one
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

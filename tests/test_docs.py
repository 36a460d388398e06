"""The README documents every setting and environment variable the code reads, and docs/ (the
integrators' reference) every route, error code, live message and close code, with no link that
leaves the repository."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
import unicodedata
from pathlib import Path

import msgspec

from app import errors
from app.api.routes import ENDPOINTS
from app.config import ENV_OVERRIDES
from app.live import messages
from app.settings import ActionSettings, BoardSettings, FileSettings, ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}


NAMED: dict[str, type] = {"actions": ActionSettings, "boards": BoardSettings, "services": ServiceSettings}


def _keys() -> list[str]:
    keys = []
    for field in msgspec.structs.fields(FileSettings):
        if field.name in NAMED:
            keys += [f"{field.name}.NAME.{f.name}" for f in msgspec.structs.fields(NAMED[field.name])]
        else:
            keys += [f"{field.name}.{f.name}" for f in msgspec.structs.fields(field.type)]
    return keys


def test_every_setting_documented() -> None:
    missing = [key for key in _keys() if f"`{key}`" not in README]
    assert not missing, f"settings missing from the README's configuration reference: {missing}"


def test_every_environment_variable_documented() -> None:
    names = [*ENV_OVERRIDES, "SCOREBOARD_CONFIG", "SCOREBOARD_ENV", "SCOREBOARD_JWT_SECRET", "SCOREBOARD_ACTION_SECRET"]
    names.append("SCOREBOARD_ACTION_PREVIOUS_SECRETS")
    assert [n for n in names if n not in README] == []


def test_readme_first_screen_has_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:25])
    assert "run.py" in first_screen and ".ci/run" in first_screen


def _slug(heading: str) -> str:
    """A heading's anchor as Markdown renderers make it: lower case, punctuation dropped, spaces to dashes."""
    text = heading.strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def _links() -> list[tuple[str, str]]:
    """Every Markdown link of the README and docs/: (the page it is on, its target)."""
    pages = {"README.md": README, **{f"docs/{name}": text for name, text in DOCS.items()}}
    return [(page, target) for page, text in pages.items() for target in re.findall(r"\]\(([^)\s]+)\)", text)]


def test_every_link_stays_in_the_repository_and_leads_somewhere() -> None:
    links = _links()
    assert ("README.md", "docs/README.md") in links
    for page, target in links:
        assert not re.match(r"[a-z][a-z0-9+.-]*:", target), (page, target)  # no scheme: no other site
        path, _, anchor = target.partition("#")
        file = (ROOT / page).parent / path if path else ROOT / page
        assert file.resolve().is_relative_to(ROOT) and file.is_file(), (page, target)
        if anchor:
            assert anchor in _anchors(file.read_text()), (page, target)


def test_no_reference_outside_the_repository() -> None:
    for name, text in {"README.md": README, **DOCS}.items():
        assert "CONTRACT.md" not in text and "../shared" not in text, name
        # Addresses only of the server being documented, on this machine.
        assert re.findall(r"(?:https?|wss?)://(?!localhost|127\.0\.0\.1)[^\s\"')]+", text) == [], name


def test_every_route_is_in_the_reference() -> None:
    text = "\n".join(DOCS.values())
    missing = [f"{e.method} {e.path}" for e in ENDPOINTS if f"`{e.method} {e.path}" not in text]
    assert missing == []


def test_every_error_code_is_in_the_reference() -> None:
    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.ApiError)}
    table = DOCS["errors.md"]
    assert sorted(code for code in codes if f"`{code}`" not in table) == []


def test_every_live_message_and_close_code_is_in_the_reference() -> None:
    live = DOCS["live.md"]
    kinds = (*typing.get_args(messages.ServerMessage), *typing.get_args(messages.ClientMessage))
    tags = {kind.__struct_config__.tag for kind in kinds}
    tags.add("ranks_update")  # sent pre-encoded (Sequenced), as leaderboard_update and period_ended are
    assert len(tags) > 10 and sorted(tag for tag in tags if f"`{tag}`" not in live) == []
    channels = set(messages.BOARD_CHANNELS)
    assert sorted(channel for channel in channels if f"`{channel}`" not in live) == []
    close_codes = [value for name, value in vars(errors).items() if name.startswith("CLOSE_")]
    assert close_codes and [code for code in close_codes if f"| {code} |" not in live] == []
    for word in ("`seq`", "`maxRate`", "`from`", "`to`", "`radius`", "`Last-Event-ID`", "text/event-stream"):
        assert word in live, word


def test_every_board_setting_is_in_the_reference() -> None:
    boards = DOCS["boards.md"]
    camel = [re.sub(r"_(\w)", lambda m: m[1].upper(), f.name) for f in msgspec.structs.fields(BoardSettings)]
    assert [name for name in camel if f"`{name}`" not in boards] == []


def test_the_readme_points_into_the_reference() -> None:
    for page in DOCS:
        assert f"docs/{page}" in README, page


def test_the_first_command_checks_the_python_version_in_one_line() -> None:
    """`python3`, whichever it is, with a check that says in one line when it is too old."""
    first = README[README.index("```sh") : README.index("```", README.index("```sh") + 5)]
    assert "python3.11" not in README and "python3 -m venv .venv" in first
    (check,) = [line for line in first.splitlines() if "sys.version_info" in line]
    code = re.fullmatch(r"python3 -c '(.+)' &&", check)
    assert code is not None, check
    ok = subprocess.run([sys.executable, "-c", code[1]], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stderr) == (0, "")
    too_old = code[1].replace("(3, 11)", "(99, 0)")
    refused = subprocess.run([sys.executable, "-c", too_old], capture_output=True, text=True, check=False)
    assert (refused.returncode, refused.stderr) == (1, "Python 3.11 or newer is needed\n")

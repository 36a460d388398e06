"""The README documents every setting and environment variable the code reads."""

from __future__ import annotations

from pathlib import Path

import msgspec

from app.config import ENV_OVERRIDES, ActionSettings, BoardSettings, FileSettings, ServiceSettings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


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

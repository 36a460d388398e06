"""`.ci/run`: a virtualenv of its own, and one clear line when the servers it needs cannot be had."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .real_servers import ROOT


def test_ci_builds_its_own_virtualenv() -> None:
    """`--clear` empties the folder it is given: never the `.venv` a demo may be running from."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert any("-m venv --clear .venv-ci" in line for line in commands)
    assert [line for line in commands if re.search(r"\.venv(?![-\w])", line)] == []
    assert ".venv-ci/" in (ROOT / ".gitignore").read_text().splitlines()


def test_ci_stops_with_one_line_where_it_cannot_install_what_it_needs(tmp_path: Path) -> None:
    # A machine with bash and nothing else: no Redis, no PostgreSQL, no Chromium, no apt-get.
    bash = shutil.which("bash")
    assert bash is not None
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bash").symlink_to(bash)
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "services")],
        env={**os.environ, "PATH": str(tmp_path / "bin")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        executable=bash,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "ci: missing: chromium wrk prometheus redis-server postgresql, and apt-get is not there to install them: "
        "install them, then run .ci/run again"
    ]

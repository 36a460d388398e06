"""Kept only for tests/test_live.py, which another change owns: it imports `ServerProcess` from
here. Everything else imports from tests/real_servers.py; delete this file once test_live.py does."""

from __future__ import annotations

from .real_servers import run_py as ServerProcess

__all__ = ["ServerProcess"]

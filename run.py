"""Command line: `python run.py [serve] [--host H] [--port P] [--config PATH]` or `python run.py token USER_ID`."""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from app import create_app
from app.auth import UserAuth
from app.config import Config, ConfigError, load_config
from app.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Scoreboard: a real-time leaderboard service")
    parser.add_argument("--config", help="TOML file (default: $SCOREBOARD_CONFIG or ./config.toml)")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve the API, the WebSocket and the page (default)")
    for p in (parser, serve):
        p.add_argument("--host", help="listen address (overrides config and SCOREBOARD_HOST)")
        p.add_argument("--port", type=int, help="listen port (overrides config and SCOREBOARD_PORT)")
    token = commands.add_parser("token", help="print a user JWT signed with the configured user secret")
    token.add_argument("user_id")
    token.add_argument("--name", help="display name claim")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    return parser


def _load(args: argparse.Namespace) -> Config:
    environ = dict(os.environ)
    if getattr(args, "host", None):
        environ["SCOREBOARD_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        environ["SCOREBOARD_PORT"] = str(args.port)
    return load_config(args.config, environ)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        auth = UserAuth(config.secrets.jwt)
        print(auth.issue(args.user_id, name=args.name, ttl_seconds=args.ttl))
        return 0
    setup_logging(config.settings.log.level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop has no Windows build; the default loop works, only slower
        pass
    web.run_app(
        create_app(config),
        host=config.server.host,
        port=config.server.port,
        access_log=None,  # the app logs one JSON line per request itself, without query strings
        print=lambda msg: print(msg, file=sys.stderr),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

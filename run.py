"""Command line: `python run.py [serve] [--host H] [--port P] [--config PATH] [--workers N | --reuse-port]`,
`python run.py token USER_ID [--role ROLE]`, `python run.py backup PATH`, `python run.py restore PATH`,
`python run.py audit verify [--anchor HASH]` or `python run.py audit anchor`."""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys

from app import create_app, drain
from app.audit.commands import AuditError, anchor_command, verify_command
from app.auth import UserAuth
from app.config import Config, ConfigError, is_loopback, load_config, read_settings
from app.demo import NAMES, VIEWER_ID, ServiceKey, demo_config, demo_players, viewer_link
from app.logs import setup_logging
from app.maintenance import backup_command, restore_command
from app.metrics.multiprocess import shared_values
from app.settings import ID_PATTERN
from app.storage import StorageUnusable
from app.storage.backup import BackupError
from app.tracing import TracingError, exporters
from app.tracing import start as start_tracing
from app.workers import CANNOT_START, supervise

GIL_SWITCH_SECONDS = 0.0005


MAX_DEMO_PLAYERS = 1000  # one process simulates them all, beside the server it shows


def parser() -> argparse.ArgumentParser:
    """The command line: `serve` (the default), `demo`, `token`, `backup`, `restore` and `audit`, with their options."""
    # Options are accepted before or after the command; SUPPRESS keeps a later absence from
    # overwriting an earlier value.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML file (default: $SCOREBOARD_CONFIG or ./config.toml)"
    )
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", default=argparse.SUPPRESS, help="listen address (overrides SCOREBOARD_HOST)")
    listen.add_argument("--port", type=int, default=argparse.SUPPRESS, help="listen port (overrides SCOREBOARD_PORT)")
    listen.add_argument(
        "--workers", type=int, default=argparse.SUPPRESS, help="processes sharing the port (needs SCOREBOARD_REDIS_URL)"
    )
    listen.add_argument(
        "--reuse-port",
        action="store_true",
        default=argparse.SUPPRESS,
        help="share the port with other run.py processes, for rolling restarts (needs SCOREBOARD_REDIS_URL)",
    )
    cli = argparse.ArgumentParser(
        prog="run.py", description="Scoreboard: a real-time leaderboard service", parents=[config, listen]
    )
    commands = cli.add_subparsers(dest="command")
    commands.add_parser("serve", parents=[config, listen], help="serve the API, the WebSocket and the page (default)")
    demo = commands.add_parser(
        "demo", parents=[config, listen], help="serve with simulated players, so the board moves (own ./data/demo.db)"
    )
    demo.add_argument(
        "--players", type=int, default=16, help=f"simulated players (default 16, at most {MAX_DEMO_PLAYERS})"
    )
    token = commands.add_parser(
        "token", parents=[config], help="print a user JWT signed with the configured user secret"
    )
    token.add_argument("user_id")
    token.add_argument("--name", help="display name claim")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument(
        "--role",
        action="append",
        default=[],
        dest="roles",
        metavar="ROLE",
        help="a value of the `roles` claim, repeatable (--role admin: an operator, with the default auth.admin_role)",
    )
    token.add_argument(
        "--allow-production",
        action="store_true",
        help="sign even with SCOREBOARD_ENV=production (a token for a real user, signed by hand)",
    )
    backup = commands.add_parser(
        "backup",
        parents=[config],
        help="copy the SQLite database to PATH while servers run (SQLite's online backup), checked",
    )
    backup.add_argument("path", help="the backup file to write (refused if it exists, unless --force)")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    restore = commands.add_parser(
        "restore",
        parents=[config],
        help="replace the SQLite database with a checked backup; refused while a server uses it",
    )
    restore.add_argument("path", help="the backup file to restore")
    audit = commands.add_parser(
        "audit", parents=[config], help="check the history's hash chain, or print its head (safe while servers run)"
    )
    checks = audit.add_subparsers(dest="audit", required=True)
    verify = checks.add_parser(
        "verify", parents=[config], help="exit 0 when the chain is intact, 1 naming the first bad row"
    )
    verify.add_argument(
        "--anchor", metavar="HASH", help="a head printed earlier by `audit anchor`: it must be in the chain"
    )
    checks.add_parser("anchor", parents=[config], help="print the chain's head hash, to keep somewhere else")
    return cli


def _maintain(args: argparse.Namespace) -> int:
    """`backup` or `restore`: one line on stdout when done, one on stderr when refused (exit 1)."""
    try:
        settings = read_settings(getattr(args, "config", None))  # no secrets: a backup needs none
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "backup":
            print(backup_command(settings, args.path, force=args.force))
        else:
            print(restore_command(settings, args.path))
    except (BackupError, OSError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _audit(args: argparse.Namespace) -> int:
    """`audit verify` (exit 1 naming the first bad row) or `audit anchor`: one line on stdout, or
    one on stderr when the store cannot be read (exit 2)."""
    try:
        settings = read_settings(getattr(args, "config", None))  # no secrets: the chain needs none
        if args.audit == "anchor":
            print(anchor_command(settings))
            return 0
        intact, line = verify_command(settings, anchor=args.anchor)
    except (ConfigError, AuditError) as exc:
        print(f"audit {args.audit}: {exc}", file=sys.stderr)
        return 2
    print(line)
    return 0 if intact else 1


def load(args: argparse.Namespace) -> Config:
    """The configuration: the file and environment, with `--host` and `--port` over them."""
    environ = dict(os.environ)
    if "host" in args:
        environ["SCOREBOARD_HOST"] = args.host
    if "port" in args:
        environ["SCOREBOARD_PORT"] = str(args.port)
    return load_config(getattr(args, "config", None), environ)


def _token(config: Config, args: argparse.Namespace) -> str:
    """A user JWT for development and tests, within what the server accepts."""
    if config.production and not args.allow_production:
        raise ConfigError("token: refused with SCOREBOARD_ENV=production unless --allow-production is given")
    if not 1 <= args.ttl <= config.auth.max_lifetime_seconds:
        raise ConfigError(f"--ttl: must be 1 to auth.max_lifetime_seconds ({config.auth.max_lifetime_seconds})")
    if not re.fullmatch(ID_PATTERN, args.user_id):
        # The server refuses such a subject with 401; a token it would refuse is no help.
        raise ConfigError("USER_ID: 1 to 100 characters of A-Z a-z 0-9 _ . : - (as the server accepts)")
    auth = UserAuth.for_config(config)
    if not auth.accepts_hs256:
        raise ConfigError("token: auth.algorithms does not accept HS256; user tokens come from the identity provider")
    return auth.issue(args.user_id, name=args.name, ttl_seconds=args.ttl, roles=tuple(args.roles))


def _announce(message: str) -> None:
    """A line for the person at the terminal, whatever the log level."""
    print(message, file=sys.stderr)


def serve(
    config: Config,
    *,
    demo: int = 0,
    racer_key: ServiceKey | None = None,
    reuse_port: bool = False,
    tracing: tuple[str, ...] = (),
) -> None:
    """Run the server in this process (with `demo` simulated players, and a simulated game server
    writing with `racer_key`), traced to the `tracing` exporters when there are any (see
    app/tracing.py): each process, every worker, has its own. ListenError when the address is taken."""
    # Before anything starts: a busy port is one line (ListenError), not a start-up and a traceback.
    check_addresses(config, reuse_port=reuse_port)
    setup_logging(config.settings.log.level)
    provider = start_tracing(tracing) if tracing else None
    # The SQLite writer thread takes the GIL back after every statement. While the loop is busy
    # (a broadcast wave to 10,000 sockets) the default 5 ms switch interval made each of those
    # hand-overs wait up to 5 ms: awards queued for hundreds of milliseconds behind waves.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    app = create_app(config, reuse_port=reuse_port)
    if demo:
        app.cleanup_ctx.append(
            demo_players(
                config,
                f"http://127.0.0.1:{config.server.port}",
                players=demo,
                racer_key=racer_key,
                announce=_announce,
            )
        )
        _announce(f"demo: the live page as {NAMES[0]} ({VIEWER_ID}), with the ranks around them:")
        _announce(f"  {viewer_link(config)}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop has no Windows build; the default loop works, only slower
        pass
    try:
        drain.serve(
            app,
            host=config.server.host,
            port=config.server.port,
            reuse_port=reuse_port,
            drain_seconds=config.server.drain_seconds,
            announce=_announce,
        )
    finally:
        if provider is not None:
            provider.shutdown()  # exports the spans still queued


def serve_worker(config: Config, *, tracing: tuple[str, ...]) -> None:
    """One process of `--workers N`: `serve` on the shared port; a start it cannot make (its port
    or database refused) is one line and the exit code that stops the supervisor."""
    try:
        serve(config, reuse_port=True, tracing=tracing)
    except (drain.ListenError, StorageUnusable) as exc:
        print(exc, file=sys.stderr)
        sys.exit(CANNOT_START)


def check_addresses(config: Config, *, reuse_port: bool) -> None:
    """Refuse the main port, and the metrics listener's, when this process could not listen there
    (ListenError, one line)."""
    drain.check_address(config.server.host, config.server.port, reuse_port=reuse_port)
    metrics = config.metrics
    if metrics.enabled and not metrics.on_main_port:
        drain.check_address(metrics.host, metrics.port, reuse_port=reuse_port, remedy=drain.METRICS_PORT)


def _check_processes(config: Config, command: str, *, workers: int, reuse_port: bool) -> None:
    """Refuse a process layout the configuration cannot serve (ConfigError)."""
    if workers < 1:
        raise ConfigError("--workers: must be at least 1")
    if workers > 1 and command == "demo":
        raise ConfigError("--workers: the demo runs in one process")
    if workers > 1 and not config.storage.redis_url:
        raise ConfigError("--workers: several processes need SCOREBOARD_REDIS_URL (shared board and fan-out)")
    if reuse_port and command == "demo":
        raise ConfigError("--reuse-port: the demo runs in one process")
    if reuse_port and not config.storage.redis_url:
        raise ConfigError("--reuse-port: processes sharing a port need SCOREBOARD_REDIS_URL (shared board and fan-out)")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    args = parser().parse_args(argv)
    if args.command in ("backup", "restore"):
        return _maintain(args)
    if args.command == "audit":
        return _audit(args)
    workers = getattr(args, "workers", 1)
    reuse_port = getattr(args, "reuse_port", False)
    racer_key = None
    try:
        config = load(args)
        if args.command == "token":
            print(_token(config, args))
            return 0
        tracing = exporters(os.environ)
        if args.command == "demo":
            if not 1 <= args.players <= MAX_DEMO_PLAYERS:
                raise ConfigError(f"--players: 1 to {MAX_DEMO_PLAYERS}")
            if config.production:
                raise ConfigError("demo: refused with SCOREBOARD_ENV=production (simulated players write real scores)")
            if not is_loopback(config.server.host):
                raise ConfigError(f"demo: serves on a loopback address only, not {config.server.host!r}")
            racer_key = ServiceKey()  # this run's own: gone with the process, never shown
            config = demo_config(config, racer_key)
        _check_processes(config, args.command, workers=workers, reuse_port=reuse_port)
    except (ConfigError, TracingError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    demo = args.players if args.command == "demo" else 0
    try:
        if workers == 1:
            serve(config, demo=demo, racer_key=racer_key, reuse_port=reuse_port, tracing=tracing)
            return 0
        check_addresses(config, reuse_port=True)  # once, not in each worker
    except (drain.ListenError, StorageUnusable) as exc:
        print(exc, file=sys.stderr)
        return 1
    setup_logging(config.settings.log.level)
    serving = functools.partial(serve_worker, config, tracing=tracing)
    if not config.metrics.enabled:
        return supervise(serving, workers, drain_seconds=config.server.drain_seconds)
    with shared_values() as ended:
        return supervise(serving, workers, drain_seconds=config.server.drain_seconds, on_exit=ended)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench run [...]`: benchmark the Scoreboard against bare baselines on 127.0.0.1;
`python -m bench bigboard [...]`: rebuild, rank lookups, around-me and rank ranges with a million
entries on a board (or K boards of N);
`python -m bench boards awards|rollover [...]`: awards on several boards at once against one board
and the bare baselines; a board period ending under load;
`python -m bench verify [...]`: what verifying an action token and a user's bearer JWT costs, in process;
`python -m bench rules [...]`: what the cheat rules cost an award, in process;
`python -m bench retention [...]`: old award history purged while awards go on;
`python -m bench windows [...]`: every client on its own live around-me window (or the top 10) of
a big board under awards: commit -> client, delivery, server CPU per award."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .options import MODES, Options

if TYPE_CHECKING:
    from .bigboard import BigOptions
    from .windows import WindowsOptions


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the server, load it, measure, write result.json and result.md")
    d = Options()
    run.add_argument("--mode", choices=MODES, default=d.mode, help="storage set-up (default %(default)s)")
    run.add_argument("--clients", type=int, default=d.clients, help="WebSocket subscribers (default %(default)s)")
    run.add_argument("--auth-share", type=float, default=d.auth_share, help="share of clients with a user JWT")
    run.add_argument("--rate", type=float, default=d.rate, help="awards per second, open loop")
    run.add_argument("--duration", type=float, default=d.duration, help="seconds of open-loop load")
    run.add_argument("--read-rate", type=float, default=d.read_rate, help="GET /scoreboard/top per second")
    run.add_argument("--users", type=int, default=d.users, help="distinct players receiving awards")
    run.add_argument(
        "--hot-share", type=float, default=d.hot_share, help="share of awards to 20 leading players (more waves)"
    )
    run.add_argument("--client-procs", type=int, default=d.client_procs, help="processes holding the WebSockets")
    run.add_argument("--workers", type=int, default=d.workers, help="server processes (run.py --workers; needs Redis)")
    run.add_argument("--concurrency", type=int, default=d.concurrency, help="closed-loop workers in the capacity runs")
    run.add_argument("--capacity-seconds", type=float, default=d.capacity_seconds)
    run.add_argument("--capacity-awards", type=int, default=d.capacity_awards, help="tokens for the capacity award run")
    run.add_argument("--no-capacity", dest="capacity", action="store_false", help="skip the closed-loop runs")
    run.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=d.baselines)
    run.add_argument("--profile", action="store_true", help="py-spy the server during the open-loop phase")
    run.add_argument(
        "--metrics", action="store_true", help="the server's Prometheus metrics on, scraped as Prometheus would"
    )
    run.add_argument(
        "--rules", action="store_true", help="every action with every cheat rule (none ever holds): what checking costs"
    )
    run.add_argument("--scrape-seconds", type=float, default=d.scrape_seconds, help="between scrapes with --metrics")
    run.add_argument("--out", type=Path, help="output directory (default bench/results/<timestamp>)")
    add_bigboard(commands)
    add_boards(commands)
    add_windows(commands)
    # Listed for the help; main() hands its arguments to bench/verify.py's own parser.
    commands.add_parser("verify", help="the cost of verifying action tokens and bearer JWTs, per call", add_help=False)
    commands.add_parser("rules", help="what the cheat rules cost an award, in process", add_help=False)
    commands.add_parser("retention", help="old history purged under a loop of awards", add_help=False)
    report = commands.add_parser("report", help="print result.md again from a result.json (after a report change)")
    report.add_argument("out", type=Path, help="the run's output directory")
    return p


def add_bigboard(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    big = commands.add_parser(
        "bigboard", help="N users written into the store: time the rebuild at start and rank lookups"
    )
    big.add_argument("--users", type=int, default=1_000_000, help="entries on each board (default %(default)s)")
    big.add_argument("--boards", type=int, default=1, help="boards of --users entries each (default %(default)s)")
    big.add_argument("--mode", choices=MODES, default="embedded", help="storage set-up (default %(default)s)")
    big.add_argument("--lookups", type=int, default=20_000, help="rank lookups, over HTTP and in the index")
    big.add_argument(
        "--reads", type=int, default=10_000, help="around-me and rank-range reads each, one at a time (HTTP)"
    )
    big.add_argument(
        "--read-rounds", type=int, default=1, help="rounds of the around-me and range passes (default %(default)s)"
    )
    big.add_argument("--concurrency", type=int, default=8, help="HTTP lookups in flight (default %(default)s)")
    big.add_argument("--seed", type=int, default=1, help="scores, sequences and picks (default %(default)s)")
    big.add_argument("--ready-within", type=float, default=180.0, help="seconds allowed from spawn to /readyz 200")
    big.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run, clean-up included")
    big.add_argument("--profile", action="store_true", help="py-spy the server from spawn to ready (the rebuild)")
    big.add_argument("--out", type=Path, help="output directory (default bench/results/bigboard-<timestamp>)")


def add_boards(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    boards = commands.add_parser("boards", help="many boards: awards on several at once, a period rollover")
    which = boards.add_subparsers(dest="boards_command", required=True)
    awards = which.add_parser(
        "awards", help="awards on 3 boards vs 1 board vs bare ZINCRBY, reads vs hello; alternated rounds"
    )
    awards.add_argument("--mode", choices=MODES, default="embedded", help="storage set-up (default %(default)s)")
    awards.add_argument("--rounds", type=int, default=5, help="alternated rounds (default %(default)s)")
    awards.add_argument("--awards", type=int, default=6000, help="awards per action per round (default %(default)s)")
    awards.add_argument(
        "--award-seconds", type=float, default=5.0, help="at most this per award phase (wrk -d; default %(default)s)"
    )
    awards.add_argument("--concurrency", type=int, default=64, help="closed-loop connections (default %(default)s)")
    awards.add_argument("--read-seconds", type=float, default=3.0, help="seconds of each cycled closed loop")
    awards.add_argument("--users", type=int, default=2000, help="distinct players (default %(default)s)")
    awards.add_argument(
        "--players",
        choices=("turns", "random"),
        default="turns",
        help="who makes each award: the players in turn, or drawn at random (ties, passes) (default %(default)s)",
    )
    awards.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    awards.add_argument(
        "--profile", action="store_true", help="py-spy one more phase of each action and of the reads after the rounds"
    )
    awards.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole run")
    awards.add_argument("--out", type=Path, help="output directory (default bench/results/boards-awards-<timestamp>)")
    roll = which.add_parser("rollover", help="a board of N entries whose period ends under a closed loop of load")
    roll.add_argument("--users", type=int, default=1_000_000, help="entries on the board (default %(default)s)")
    roll.add_argument("--mode", choices=MODES, default="embedded", help="storage set-up (default %(default)s)")
    roll.add_argument("--awarders", type=int, default=2, help="award workers, closed loop (default %(default)s)")
    roll.add_argument("--readers", type=int, default=2, help="read workers, closed loop (default %(default)s)")
    roll.add_argument("--lead", type=float, help="seconds from start to the boundary at least (default: by size)")
    roll.add_argument("--before", type=float, default=20.0, help="seconds of load before the boundary")
    roll.add_argument(
        "--after", type=float, default=70.0, help="seconds of load after the boundary (default %(default)s)"
    )
    roll.add_argument("--keep", type=int, default=0, help="the board's keep_periods (default %(default)s)")
    roll.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    roll.add_argument("--out", type=Path, help="output directory (default bench/results/boards-rollover-<timestamp>)")


def add_windows(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    win = commands.add_parser(
        "windows", help="N clients each on its own live around-me window (or the top 10) of a big board, under awards"
    )
    win.add_argument("--users", type=int, default=100_000, help="entries on the board (default %(default)s)")
    win.add_argument("--clients", type=int, default=10_000, help="connections, one user each (default %(default)s)")
    win.add_argument("--rate", type=float, default=200.0, help="awards per second, open loop (default %(default)s)")
    win.add_argument("--duration", type=float, default=20.0, help="seconds of awards (default %(default)s)")
    win.add_argument("--radius", type=int, default=5, help="ranks either side in each window (default %(default)s)")
    win.add_argument(
        "--channel",
        choices=("around", "leaderboard", "none"),
        default="around",
        help="each client's own around window, the top 10, or nothing (the awards' own cost; default %(default)s)",
    )
    win.add_argument("--mode", choices=MODES, default="embedded", help="storage set-up (default %(default)s)")
    win.add_argument("--client-procs", type=int, default=2, help="processes holding the WebSockets")
    win.add_argument(
        "--hot-share", type=float, default=0.01, help="share of awards to the 20 leaders (default %(default)s)"
    )
    win.add_argument("--drain", type=float, default=30.0, help="seconds the clients may take to show the end state")
    win.add_argument("--seed", type=int, default=1, help="scores, users and awards (default %(default)s)")
    win.add_argument("--profile", action="store_true", help="py-spy the server during the awards")
    win.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run (default %(default)s)")
    win.add_argument("--out", type=Path, help="output directory (default bench/results/windows-<timestamp>)")


def windows_options(args: argparse.Namespace) -> WindowsOptions:
    if args.users < 20 or not 1 <= args.clients <= args.users or args.rate <= 0 or args.duration <= 0:
        raise SystemExit("bench: --users >= 20, 1 <= --clients <= --users, --rate and --duration > 0")
    if not 0 <= args.radius <= 25 or args.client_procs < 1 or args.drain <= 0 or args.timeout <= 0:
        raise SystemExit("bench: 0 <= --radius <= 25; --client-procs >= 1; --drain, --timeout > 0")
    from .windows import WindowsOptions

    out = args.out or Path(__file__).parent / "results" / time.strftime("windows-%Y%m%d-%H%M%S")
    return WindowsOptions(
        users=args.users,
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        radius=args.radius,
        channel=args.channel,
        mode=args.mode,
        client_procs=args.client_procs,
        hot_share=min(max(args.hot_share, 0.0), 1.0),
        drain=args.drain,
        seed=args.seed,
        profile=args.profile,
        timeout=args.timeout,
        out=out,
    )


def run_windows(args: argparse.Namespace) -> int:
    import uvloop

    from . import report, windows, windowsreport

    opts = windows_options(args)
    result = uvloop.run(windows.run(opts))
    print(report.write(result, opts.out, windowsreport.markdown))
    print(f"\nwritten: {opts.out / 'result.json'}, {opts.out / 'result.md'}")
    return 0 if result.get("finished") and all(result["checks"].values()) else 1


def run_boards(args: argparse.Namespace) -> int:
    import uvloop

    from . import boards, boardsreport, report, rollover

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = Path(__file__).parent / "results"
    if args.boards_command == "awards":
        if (
            min(args.rounds, args.awards, args.concurrency, args.users) < 1
            or min(args.read_seconds, args.award_seconds) <= 0
        ):
            raise SystemExit(
                "bench: --rounds, --awards, --concurrency, --users >= 1; --read-seconds, --award-seconds > 0"
            )
        awards = boards.AwardsOptions(
            mode=args.mode,
            rounds=args.rounds,
            awards=args.awards,
            award_seconds=args.award_seconds,
            concurrency=args.concurrency,
            read_seconds=args.read_seconds,
            users=args.users,
            players=args.players,
            baselines=args.baselines,
            profile=args.profile,
            timeout=args.timeout,
            out=args.out or results / f"boards-awards-{stamp}",
        )
        result = uvloop.run(boards.awards(awards))
        out, render = awards.out, boardsreport.awards_markdown
    else:
        if args.users < 20 or min(args.awarders, args.readers) < 1 or args.after <= 0 or args.before <= 0:
            raise SystemExit("bench: --users >= 20; --awarders, --readers >= 1; --before, --after > 0")
        if args.keep < 0:
            raise SystemExit("bench: --keep >= 0")
        roll = rollover.RolloverOptions(
            users=args.users,
            mode=args.mode,
            awarders=args.awarders,
            readers=args.readers,
            lead=args.lead,
            before=args.before,
            after=args.after,
            keep=args.keep,
            timeout=args.timeout,
            out=args.out or results / f"boards-rollover-{stamp}",
        )
        result = uvloop.run(rollover.rollover(roll))
        out, render = roll.out, boardsreport.rollover_markdown
    print(report.write(result, out, render))
    print(f"\nwritten: {out / 'result.json'}, {out / 'result.md'}")
    return 0 if result.get("finished") and all(result["checks"].values()) else 1


def bigboard_options(args: argparse.Namespace) -> BigOptions:
    counts = (args.users, args.boards, args.lookups, args.reads, args.read_rounds, args.concurrency)
    if min(counts) < 1 or args.users < 20 or args.ready_within <= 0 or args.timeout <= 0:
        raise SystemExit(
            "bench: --users >= 20; --boards, --lookups, --reads, --concurrency >= 1; --ready-within, --timeout > 0"
        )
    from .bigboard import BigOptions

    out = args.out or Path(__file__).parent / "results" / time.strftime("bigboard-%Y%m%d-%H%M%S")
    return BigOptions(
        users=args.users,
        mode=args.mode,
        boards=args.boards,
        lookups=args.lookups,
        reads=args.reads,
        read_rounds=args.read_rounds,
        concurrency=args.concurrency,
        seed=args.seed,
        ready_within=args.ready_within,
        timeout=args.timeout,
        profile=args.profile,
        out=out,
    )


def run_bigboard(args: argparse.Namespace) -> int:
    import uvloop

    from . import bigboard, bigreport, report

    opts = bigboard_options(args)
    result = uvloop.run(bigboard.run(opts))
    print(report.write(result, opts.out, bigreport.markdown))
    print(f"\nwritten: {opts.out / 'result.json'}, {opts.out / 'result.md'}")
    return 0 if result.get("finished") and all(result["checks"].values()) else 1


def options(args: argparse.Namespace) -> Options:
    out = args.out or Path(__file__).parent / "results" / time.strftime("%Y%m%d-%H%M%S")
    if args.clients < 0 or args.rate <= 0 or args.read_rate < 0 or args.duration <= 0 or args.users < 1:
        raise SystemExit("bench: --clients >= 0, --rate > 0, --read-rate >= 0, --duration > 0, --users >= 1")
    if args.workers > 1 and args.mode == "embedded":
        raise SystemExit("bench: --workers needs --mode redis or postgres")
    return Options(
        mode=args.mode,
        clients=args.clients,
        auth_share=min(max(args.auth_share, 0.0), 1.0),
        rate=args.rate,
        duration=args.duration,
        read_rate=args.read_rate,
        users=args.users,
        hot_share=min(max(args.hot_share, 0.0), 1.0),
        client_procs=args.client_procs,
        workers=args.workers,
        baselines=args.baselines,
        capacity=args.capacity,
        capacity_seconds=args.capacity_seconds,
        capacity_awards=args.capacity_awards,
        concurrency=args.concurrency,
        profile=args.profile,
        metrics=args.metrics,
        scrape_seconds=args.scrape_seconds,
        rules=args.rules,
        out=out,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        from . import verify

        return verify.main(argv[1:])
    if argv[:1] == ["rules"]:
        from . import rules

        return rules.main(argv[1:])
    if argv[:1] == ["retention"]:
        from . import retention

        return retention.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "report":
        import json

        from . import bigreport, boardsreport, report, windowsreport

        result = json.loads((args.out / "result.json").read_text())
        render = {
            "bigboard": bigreport.markdown,
            "boards-awards": boardsreport.awards_markdown,
            "boards-rollover": boardsreport.rollover_markdown,
            "windows": windowsreport.markdown,
        }.get(result.get("kind"), report.markdown)
        print(report.write(result, args.out, render))
        return 0
    if args.command == "bigboard":
        return run_bigboard(args)
    if args.command == "boards":
        return run_boards(args)
    if args.command == "windows":
        return run_windows(args)
    opts = options(args)
    import uvloop

    from .report import write
    from .runner import run

    result = uvloop.run(run(opts))
    print(write(result, opts.out))
    print(f"\nwritten: {opts.out / 'result.json'}, {opts.out / 'result.md'}")
    return 0 if result.get("finished") else 1


if __name__ == "__main__":
    sys.exit(main())

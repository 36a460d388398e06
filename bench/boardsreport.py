"""The Markdown reports of `python -m bench boards awards` and `python -m bench boards rollover`."""

from __future__ import annotations

from typing import Any

from .boards import ONE, THREE
from .load import TOP
from .report import ms, table
from .rollover import SLOW_MS
from .runner import HELLO, ZINCRBY

_PLAYERS = {"turns": "in turn", "random": "drawn at random"}
_ROUTES = (
    (ONE, "awards on 1 board (closed loop, single-use tokens)"),
    (THREE, "awards on 3 boards at once (same)"),
    (ZINCRBY, "baseline PyJWT + ZINCRBY"),
    (TOP, "GET /scoreboard/top"),
    (HELLO, "baseline hello-world"),
)
_RATIOS = (
    ("three_vs_one_boards_throughput", "awards on 3 boards / on 1 board (throughput)", "≥ 0.8"),
    ("three_vs_one_boards_cpu_efficiency", "awards on 3 boards / on 1 board (1 / server CPU per award)", ""),
    (
        "three_vs_one_boards_box_cpu_efficiency",
        "awards on 3 boards / on 1 board (1 / server + Redis + PostgreSQL CPU per award)",
        "",
    ),
    ("one_board_award_vs_zincrby", "awards on 1 board / ZINCRBY baseline", "≥ 0.8 (SQLite+Redis), ≥ 0.6 (PG+Redis)"),
    ("three_boards_award_vs_zincrby", "awards on 3 boards / ZINCRBY baseline", ""),
    ("one_board_award_cpu_vs_zincrby", "awards on 1 board / ZINCRBY (1 / server CPU per request)", ""),
    ("read_vs_hello", "GET /top / hello-world (throughput)", "≥ 0.8 (SQLite+Redis), ≥ 0.6 (PG+Redis)"),
    ("read_cpu_vs_hello", "GET /top / hello-world (1 / server CPU per request)", ""),
)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _route_cells(rounds: list[dict[str, Any]], name: str) -> list[str]:
    rates = [r[name]["ok_per_second"] for r in rounds if name in r]
    cpu = [r[name].get("server_cpu_us_per_request") for r in rounds if name in r]
    p99 = [r[name]["latency_ms"]["p99"] for r in rounds if name in r]
    return [
        " / ".join(f"{v:,.0f}" for v in rates) or "-",
        " / ".join("-" if v is None else f"{v:,.0f}" for v in cpu) or "-",
        " / ".join(ms(v) for v in p99) or "-",
    ]


def _costs(rounds: list[dict[str, Any]], name: str) -> str:
    """The stores' CPU, Redis round trips, database transactions, overtake notices (and writes whose
    notices were skipped) and Redis commands per award (the last round's)."""
    if not rounds or name not in rounds[-1]:
        return "-"
    last = rounds[-1][name]
    parts = []
    if "stores_cpu_us_per_award" in last:
        parts.append(f"{last['stores_cpu_us_per_award']:,.0f} µs of Redis + PostgreSQL CPU")
    if "redis_round_trips_per_award" in last:
        parts.append(f"{last['redis_round_trips_per_award']} Redis round trips")
    if "database_round_trips_per_award" in last:
        parts.append(f"{last['database_round_trips_per_award']} database transactions")
    if "overtake_notices_per_award" in last:
        parts.append(f"{last['overtake_notices_per_award']} overtake notices")
    if "overtake_skips_per_award" in last:
        parts.append(f"{last['overtake_skips_per_award']} writes' notices skipped")
    commands = last.get("redis_commands_per_award") or {}
    if commands:
        parts.append("commands: " + ", ".join(f"{k} {v}" for k, v in list(commands.items())[:6]))
    return "; ".join(parts) or "-"


def awards_markdown(result: dict[str, Any]) -> str:
    """Settings, each route per round, the ratios' medians, what each award cost."""
    opts = result["options"]
    server = result.get("server") or {}
    rounds = server.get("rounds") or []
    failed = [k for k, ok in result["checks"].items() if not ok]
    lines = [
        f"### Scoreboard boards: awards on 1 and 3 boards, {opts['mode']}",
        "",
        f"Started {result['started']}, {result['wall_seconds']} s in all, finished: {result.get('finished')}."
        + (f" **Error: {result['error']}**" if result.get("error") else ""),
        f"Correctness checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}.",
        f"{len(rounds)} rounds, each: {opts['awards']:,} awards per action by {opts['users']:,} players "
        f"{_PLAYERS[opts.get('players', 'turns')]}, closed loop x{opts['concurrency']} "
        f"({result.get('generator')}), the two actions alternating which goes first; then {opts['read_seconds']} s "
        f"each of reads, ZINCRBY and hello. Whole machine busy {result.get('machine_busy_percent')} % "
        "(200 = both cores).",
        "",
        *table(
            ["route", "ok/s per round", "server CPU µs per request", "p99 ms"],
            [[label, *_route_cells(rounds, name)] for name, label in _ROUTES],
        ),
        "",
        *table(
            ["ratio", "median", "min to max", "target"],
            [
                [
                    label,
                    _num(result["ratios"][key]["median"]),
                    f"{_num(result['ratios'][key]['min'])} to {_num(result['ratios'][key]['max'])}",
                    target,
                ]
                for key, label, target in _RATIOS
            ],
        ),
        "",
        *table(
            ["per award (last round)", "cost"],
            [["1 board", _costs(rounds, ONE)], ["3 boards", _costs(rounds, THREE)]],
        ),
        "",
    ]
    for action, found in (server.get("profiled") or {}).items():
        prof = found.get("profile")
        if not prof:
            lines += [f"Profile of {action} not taken: {found.get('profile_error')}", ""]
            continue
        app = [e for e in prof["total"] if "(app/" in e["function"]][:12]
        lines += [
            f"py-spy of the server over one more phase of {action}, {prof['samples']} samples:",
            "",
            *table(
                ["function (own time)", "%"], [[f"`{e['function']}`", str(e["percent"])] for e in prof["self"][:15]]
            ),
            "",
            *table(["app/ function (with callees)", "%"], [[f"`{e['function']}`", str(e["percent"])] for e in app]),
            "",
        ]
    return "\n".join(lines)


def _window_cells(window: dict[str, Any]) -> str:
    if not window or not window.get("count"):
        return "-"
    return (
        f"{window['count']:,}: p50 {ms(window['p50_ms'])} / p99 {ms(window['p99_ms'])} / max {ms(window['max_ms'])}"
        f" ({window[f'over_{SLOW_MS:g}_ms']} over {SLOW_MS:g})"
    )


def rollover_markdown(result: dict[str, Any]) -> str:
    """Settings, latency before / around / after the boundary per kind, the checks."""
    opts = result["options"]
    failed = [k for k, ok in result["checks"].items() if not ok]
    win = result.get("windows") or {}
    kinds = [
        ("award", "POST /scoreboard/update"),
        ("initialize", "POST /actions/initialize"),
        ("around", "GET around-me (radius 5)"),
        ("range", "GET ranks (10 from a random rank)"),
        ("top", "GET top"),
        ("reads", "all reads"),
    ]
    spans = ["before", "around", "after"]
    heads = ["requests", "before (from 1 s after the start)", "around (± 1 s)", "after"]
    unlinked = result.get("unlinked")
    if unlinked is not None:  # Redis mode: the sweep unlinked the finished period's keys
        spans.append("unlink")
        heads.append(f"at the unlink (± 1 s of {unlinked['at_s']:+} s, {unlinked['keys']} keys)")
    rows = [[label, *(_window_cells((win.get(k) or {}).get(w) or {}) for w in spans)] for k, label in kinds]
    verdicts = [
        [name, _num(t["value"]), f"< {t['limit']:g} ms: " + {True: "pass", False: "**FAIL**", None: "-"}[t["pass"]]]
        for name, t in (result.get("targets") or {}).items()
    ]
    periods = result.get("periods") or {}
    lines = [
        f"### Scoreboard boards: rollover of {opts['users']:,} entries, {opts['mode']}",
        "",
        f"Started {result['started']}, {result['wall_seconds']} s in all, finished: {result.get('finished')}."
        + (f" **Error: {result['error']}**" if result.get("error") else ""),
        f"Correctness checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}.",
        f"Board `{(result.get('board') or {}).get('reset')}` (UTC, keep_periods "
        f"{(result.get('board') or {}).get('keep_periods')}): period {periods.get('before')} → "
        f"{periods.get('after')} at {result.get('boundary')}; built in {result.get('build_seconds')} s, ready in "
        f"{result.get('start_to_ready_seconds')} s, {result.get('seconds_of_load_before_boundary')} s of load "
        f"before the boundary, {opts['after']} s after; {opts['awarders']} award workers (initialize + update) "
        f"and {opts['readers']} read workers, closed loop. Awards per period: {result.get('award_periods')}; "
        f"entries after: {result.get('entries_after')}. Whole machine busy {result.get('machine_busy_percent')} % "
        f"(200 = both cores). Server RSS {result.get('rss_mib_after_start')} → {result.get('rss_mib_after_load')} MiB.",
        "",
        *table(heads, rows),
        "",
        *table(["target", "value ms", "verdict"], verdicts),
        "",
        "Slowest requests (seconds from the boundary): "
        + ", ".join(f"{s['kind']} {s['ms']} ms at {s['at_s']:+} s" for s in result.get("slowest") or [])
        + ".",
        "",
    ]
    return "\n".join(lines)

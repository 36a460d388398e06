"""The Markdown report of `python -m bench bigboard`: its settings, outcome and measures against the targets."""

from __future__ import annotations

from typing import Any

from .bigboard import HTTP_PASSES
from .report import ms, table


def _verdict(target: dict[str, Any]) -> str:
    return {True: "pass", False: "**FAIL**", None: "-"}[target["pass"]]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,}"


_PASSES = (
    ("lookups", "rank_lookup_p99_ms_over_http", "user score", "1 ms"),
    ("lookups_serial", "rank_lookup_p99_ms_over_http_serial", "user score", "1 ms"),
    ("around_serial", "around_p99_ms_over_http_serial", "around-me (radius 5)", "2 ms"),
    ("range_serial", "range_p99_ms_over_http_serial", "rank range (10 from a random rank)", "2 ms"),
)


def _http_rows(server: dict[str, Any], tg: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for key, target, what, limit in _PASSES:
        lookups = server.get(key)
        if not lookups:
            continue
        lat, x = lookups["latency_ms"], lookups["concurrency"]
        rows += [
            [
                f"HTTP {what} p50 / p95 / p99 / max ms (x{x} in flight, keep-alive)",
                f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])} / {ms(lat['max'])}",
                f"p99 < {limit}: {_verdict(tg[target])}",
            ],
            [
                f"HTTP {what} sent / 200 / per s (x{x})",
                f"{lookups['sent']:,} / {lookups['ok']:,} / {lookups.get('ok_per_second', 0):,.0f}",
                "",
            ],
        ]
    return rows


def _round_rows(tg: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Each round's p99 of the around-me and range passes, and their median against the target."""
    rows = []
    for key, what in (("around", "around-me"), ("range", "rank range")):
        target = tg.get(f"{key}_p99_ms_over_http_serial") or {}
        rounds = target.get("rounds") or []
        if len(rounds) > 1:
            rows.append(
                [
                    f"HTTP {what} p99 ms per round (x1), median",
                    " / ".join(ms(v) for v in rounds) + f"; median {ms(target['value'])}",
                    f"p99 < 2 ms: {_verdict(target)}",
                ]
            )
    return rows


def _server_side_rows(server: dict[str, Any]) -> list[list[str]]:
    """The server's own time per request (its access lines), every pass of a route together."""
    rows = []
    for kind, what in (("lookup", "user score"), ("around", "around-me"), ("range", "rank range")):
        lat = (server.get("server_side_ms") or {}).get(kind)
        if lat and lat.get("count"):
            rows.append(
                [
                    f"server-side {what} p50 / p99 / max ms (access log, every pass)",
                    " / ".join(f"{lat[q]:.2f}" for q in ("p50", "p99", "max")),
                    "",
                ]
            )
    return rows


def _split(index: dict[str, Any], rebuild: float | None) -> str:
    """The rebuild's halves: reading the rows, then loading the index (embedded) or Redis."""
    read = index.get("read_rows_seconds")
    if "load_index_seconds" in index:
        return f"read rows {_num(read)} s + load index {index['load_index_seconds']} s"
    if read is None or rebuild is None:
        return f"read rows {_num(read)} s"
    return f"read rows {read} s; the rest of the rebuild, ≈ {rebuild - read:.1f} s, loads Redis"


def _cpu(server: dict[str, Any], name: str) -> str:
    """One CPU share over start, then each lookup pass."""
    phases = [server, *(server[k] for k in HTTP_PASSES if server.get(k))]
    values = [(p.get("cpu_percent") or {}).get(name) for p in phases]
    return " / ".join("-" if v is None else f"{v:,} %" for v in values)


def _profile_lines(server: dict[str, Any]) -> list[str]:
    prof = server.get("profile")
    if not prof:
        error = server.get("profile_error")
        return [f"Profile not taken: {error}", ""] if error else []
    app = [e for e in prof["total"] if "(app/" in e["function"]][:12]
    return [
        f"py-spy of the server from spawn to ready, {prof['samples']} samples:",
        "",
        *table(["function (own time)", "%"], [[f"`{e['function']}`", str(e["percent"])] for e in prof["self"][:12]]),
        "",
        *table(["app/ function (with callees)", "%"], [[f"`{e['function']}`", str(e["percent"])] for e in app]),
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    """The run's settings, outcome and one table of measures against the targets."""
    opts, server = result["options"], result.get("server") or {}
    index = result.get("index") or {}
    rank = index.get("rank") or {}
    tg = result["targets"]
    failed = [k for k, ok in result["checks"].items() if not ok]
    split = _split(index, (server.get("rebuild") or {}).get("seconds"))
    phases = " / ".join(["start", *(f"{k} x{server[k]['concurrency']}" for k in HTTP_PASSES if k in server)])
    rebuild = server.get("rebuild") or {}
    boards = opts.get("boards", 1)
    rows = [
        ["entries on each board x boards", f"{opts['users']:,} x {boards}", ""],
        ["mode", opts["mode"], ""],
        ["database built in (bench, direct inserts)", f"{_num(result.get('build_seconds'))} s", ""],
        [
            f"rebuild (server log: {_num(rebuild.get('standings'))} standings on {_num(rebuild.get('board_periods'))}"
            " board periods)",
            f"{_num(rebuild.get('seconds'))} s",
            f"< 15 s: {_verdict(tg['rebuild_seconds_server_log'])}",
        ],
        ["rebuild split of the default board, timed again in the bench alone", split, ""],
        [
            "process start → /readyz 200",
            f"{_num(server.get('start_to_ready_seconds'))} s",
            f"< 15 s: {_verdict(tg['start_to_ready_seconds'])}",
        ],
        *_http_rows(server, tg),
        [
            f"in-index rank p50 / p99 / max µs ({rank.get('what', '-')})",
            f"{_num(rank.get('p50_us'))} / {_num(rank.get('p99_us'))} / {_num(rank.get('max_us'))}",
            f"p99 < 1 ms: {_verdict(tg['rank_lookup_p99_ms_in_index'])}",
        ],
        *_round_rows(tg),
        *_server_side_rows(server),
        [f"CPU of the server ({phases}), 100 = one core", _cpu(server, "server"), ""],
        ["CPU of Redis + PostgreSQL (same phases)", _cpu(server, "redis_and_postgres"), ""],
        ["CPU of anything else on the box (same phases; > 0: disturbed)", _cpu(server, "others"), ""],
        [
            "server RSS after rebuild / after lookups",
            f"{_num(server.get('rss_mib_after_rebuild'))} / {_num(server.get('rss_mib_after_lookups'))} MiB",
            "",
        ],
    ]
    lines = [
        f"### Scoreboard big board: {boards} x {opts['users']:,} entries, {opts['mode']}",
        "",
        f"Started {result['started']}, {result['wall_seconds']} s in all, finished: {result.get('finished')}."
        + (f" **Error: {result['error']}**" if result.get("error") else ""),
        f"Correctness checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}.",
        "",
        *table(["measure", "value", "target"], rows),
        "",
        *_profile_lines(server),
    ]
    return "\n".join(lines)

"""The result as Markdown tables, and both files written to the output directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .load import INITIALIZE, TOP, UPDATE
from .runner import HELLO, ZINCRBY


def ms(value: float | None) -> str:
    """Milliseconds with one decimal, or "-"."""
    return "-" if value is None else f"{value:.1f}"


def _errors(route: dict[str, Any]) -> str:
    errors = route.get("errors") or {}
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


def _by(stats: dict[str, Any] | None) -> str:
    return " (wrk)" if stats and stats.get("generator") == "wrk" else ""


def _route_row(name: str, phase: str, route: dict[str, Any] | None) -> str:
    if not route:
        return f"| {name} | {phase} | - | - | - | - | - | - | - | - |"
    lat = route["latency_ms"]
    rate = route.get("ok_per_second")
    return (
        f"| {name} | {phase} | {route['sent']} | {route['ok']} | {'-' if rate is None else f'{rate:,.0f}'} | "
        f"{ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | {ms(lat['max'])} | {_errors(route)} |"
    )


def _cpu_line(capacity: dict[str, Any], names: list[str]) -> list[str]:
    costs = [
        f"{name} {route['server_cpu_us_per_request']:,.1f}"
        for name in names
        if (route := capacity.get(name)) and route.get("server_cpu_us_per_request") is not None
    ]
    return ["", f"Server CPU per answered request in the closed loops (µs): {'; '.join(costs)}.", ""] if costs else []


def others_line(others: dict[str, dict[str, Any]]) -> str:
    """The CPU of what shared the cores with the server (UsageGroup's samplers but the server's)."""
    found = "; ".join(f"{name} {u['cpu_percent_mean']} / {u['cpu_percent_max']}" for name, u in others.items())
    return f"CPU of what shares the cores (mean / max %): {found}."


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(result: dict[str, Any]) -> str:
    """Settings, HTTP routes, WebSocket delivery, server usage, baselines and ratios."""
    opts = result["options"]
    lines = [
        f"### Scoreboard bench: {opts['mode']}, {opts['clients']} clients, {opts['rate']:g} awards/s, "
        f"{opts['read_rate']:g} reads/s, {opts['duration']:g} s, {opts['users']} users"
        + (f" ({opts['hot_share']:.0%} of awards to 20 leaders)" if opts.get("hot_share") else ""),
        "",
        f"Started {result['started']}, {result['wall_seconds']} s in all, finished: {result.get('finished')}."
        + (f" **Error: {result['error']}**" if result.get("error") else ""),
        f"Limits lifted for the run (all load comes from one IP): {result['limits_lifted']}.",
        "",
    ]
    if result.get("checks"):
        failed = [k for k, ok in result["checks"].items() if not ok]
        lines += [f"Correctness checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}.", ""]
    sb = result.get("scoreboard", {})
    if "open_loop" in sb:
        ol = sb["open_loop"]
        lines += [
            "| route | phase | sent | 200 | ok/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
            _route_row(INITIALIZE, "prepare, closed loop", sb["prepare"][INITIALIZE]),
            _route_row(UPDATE, f"open loop {opts['rate']:g}/s", ol[UPDATE]),
            _route_row(TOP, f"open loop {opts['read_rate']:g}/s", ol[TOP]),
        ]
        if "capacity" in sb:
            c = sb["capacity"]
            lines += [
                _route_row(UPDATE, f"closed loop x{c['concurrency']}{_by(c[UPDATE])}", c[UPDATE]),
                _route_row(TOP, f"closed loop x{c['concurrency']}{_by(c[TOP])}", c[TOP]),
            ]
            lines += _cpu_line(c, [UPDATE, TOP])
        lines += [
            "",
            f"Generator: max start lag {ol['generator_max_lag_ms']} ms, dropped {ol['generator_dropped']} "
            "(latency counts from the scheduled start).",
            "",
        ]
    if "websocket" in sb:
        ws, conn, use = sb["websocket"], sb["connections"], sb["usage"]
        lat = ws["latency_ms"]
        lines += table(
            ["WebSocket", "value"],
            [
                ["connected / errors", f"{ws['connected']} / {sum(conn['connect_errors'].values())}"],
                ["closed early (by code)", str(ws["closed_early"] or 0)],
                ["live leaderboard_update received", f"{ws['live_updates']:,}"],
                ["delivered msgs/s (leaderboard_update)", f"{ws['delivered_per_second']:,.0f}"],
                [
                    "commit → client latency p50 / p99 / max ms",
                    f"{ms(lat['p50'])} / {ms(lat['p99'])} / {ms(lat['max'])}",
                ],
                [
                    "clients showing the final GET /top",
                    f"{ws['boards']['matching']} of {ws['connected']} (after {ws['converge_seconds']} s)",
                ],
                ["server CPU mean / max (100 = one core)", f"{use['cpu_percent_mean']} / {use['cpu_percent_max']} %"],
                ["server RSS max", f"{use['rss_mib_max']} MiB"],
                ["RSS per connection", f"{conn['rss_kib_per_connection']} KiB"],
            ],
        )
        lines += ["", others_line(sb.get("usage_others") or {}), ""]
    base = result.get("baselines")
    if base:
        lines += [
            "Baselines (bare aiohttp app, same clients and rates):",
            "",
            "| route | phase | sent | 200 | ok/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
            _route_row(ZINCRBY, f"open loop {opts['rate']:g}/s", base["open_loop"].get(ZINCRBY)),
            _route_row(HELLO, f"open loop {opts['read_rate']:g}/s", base["open_loop"].get(HELLO)),
        ]
        if "capacity" in base:
            c = base["capacity"]
            lines += [
                _route_row(ZINCRBY, f"closed loop x{c['concurrency']}{_by(c.get(ZINCRBY))}", c.get(ZINCRBY)),
                _route_row(HELLO, f"closed loop x{c['concurrency']}{_by(c.get(HELLO))}", c.get(HELLO)),
            ]
            lines += _cpu_line(c, [ZINCRBY, HELLO])
        single, burst = base["single_wave"]["latency_ms"], base["burst"]
        lines += [
            "",
            f"Bare broadcast ({base['message_bytes']} B messages): one wave to {base['connections']['connected']} clients "
            f"p50 / p99 / max {ms(single['p50'])} / {ms(single['p99'])} / {ms(single['max'])} ms; "
            f"{burst['waves']} waves back to back: {burst['delivered_per_second']:,.0f} msgs/s delivered "
            f"(server wrote them in {burst['server_write_seconds']} s).",
            "",
        ]
    if result.get("ratios"):
        lines += table(
            ["ratio (Scoreboard / baseline)", "value"],
            [[k.replace("_", " "), "-" if v is None else f"{v:.2f}x"] for k, v in result["ratios"].items()],
        )
        lines.append("")
    lines += profile_lines(sb)
    return "\n".join(lines)


def profile_lines(found: dict[str, Any]) -> list[str]:
    """The `profile` of a phase (py-spy's top functions), or why it was not taken."""
    prof = found.get("profile")
    if not prof:
        return [f"Profile not taken: {found['profile_error']}", ""] if found.get("profile_error") else []
    lines = [f"py-spy, {prof['samples']} samples, top functions by own time:", ""]
    lines += table(["function", "% of samples"], [[f"`{e['function']}`", str(e["percent"])] for e in prof["self"][:12]])
    app = [e for e in prof["total"] if "(app/" in e["function"]][:10]
    lines += ["", "Top app/ functions including what they call:", ""]
    lines += table(["function", "% of samples"], [[f"`{e['function']}`", str(e["percent"])] for e in app])
    lines.append("")
    return lines


def write(result: dict[str, Any], out: Path, render: Callable[[dict[str, Any]], str] | None = None) -> str:
    """Write result.json and result.md (`render`, by default a `bench run` report); the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = (render or markdown)(result)
    (out / "result.md").write_text(text + "\n")
    return text

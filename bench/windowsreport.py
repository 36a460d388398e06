"""The Markdown report of `python -m bench windows`."""

from __future__ import annotations

from typing import Any

from .load import UPDATE
from .report import ms, others_line, profile_lines, table


def _lat(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("count"):
        return "-"
    return f"{ms(summary['p50'])} / {ms(summary['p99'])} / {ms(summary['max'])} ({summary['count']:,})"


def markdown(result: dict[str, Any]) -> str:
    """Settings, latency, delivery, CPU per award, the rest of the box, the checks."""
    opts = result["options"]
    window = {
        "around": f"around (radius {opts['radius']})",
        "leaderboard": "leaderboard (top 10)",
        "none": "nothing subscribed",
    }[opts["channel"]]
    lines = [
        f"### Scoreboard live windows: {window}, {opts['clients']:,} clients on {opts['users']:,} entries, "
        f"{opts['rate']:g} awards/s for {opts['duration']:g} s, {opts['mode']}",
        "",
        f"Started {result['started']}, {result['wall_seconds']} s in all, finished: {result.get('finished')}"
        + (f". **Error: {result['error']}**" if result.get("error") else ".")
        + f" {opts['hot_share']:.0%} of the awards to the 20 leaders, the rest to distinct users across the board.",
        "",
    ]
    failed = [k for k, ok in (result.get("checks") or {}).items() if not ok]
    lines += [f"Correctness checks: {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}.", ""]
    server = result.get("server") or {}
    ws = server.get("websocket")
    if ws:
        awards = server["open_loop"][UPDATE]
        cpu, use, conn = server["server_cpu"], server["usage"], server["connections"]
        lines += table(
            ["measure", "value"],
            [
                [
                    "commit → client, every window an award changed: p50 / p99 / max ms (count)",
                    _lat(ws["commit_to_client_ms"]),
                ],
                ["newest award shown → client, per message: p50 / p99 / max ms", _lat(ws["newest_award_to_client_ms"])],
                ["`updatedAt` → client (as `bench run`): p50 / p99 / max ms", _lat(ws["updated_at_to_client_ms"])],
                [
                    "board messages delivered / per second of load",
                    f"{ws['updates']:,} / {ws['delivered_per_second']:,.0f}",
                ],
                ["messages by type", ", ".join(f"{k} {v:,}" for k, v in sorted(ws["messages_by_type"].items()))],
                [
                    "server CPU per award (load until settled)",
                    f"{cpu['us_per_award']} µs ({cpu['seconds']} s over {cpu['wall_seconds']} s)",
                ],
                [
                    "server CPU mean / max during the load (100 = one core)",
                    f"{use['cpu_percent_mean']} / {use['cpu_percent_max']} %",
                ],
                [
                    "awards: 200 of sent, p50 / p99 ms",
                    f"{awards['ok']:,} of {awards['sent']:,}, {ms(awards['latency_ms']['p50'])} / {ms(awards['latency_ms']['p99'])}",
                ],
                [
                    "connected / errors / all snapshots after",
                    f"{ws['connected']:,} / {sum(ws['connect_errors'].values())} / {conn.get('seconds_to_all_snapshots')} s",
                ],
                ["RSS per connection", f"{conn.get('rss_kib_per_connection')} KiB"],
                [
                    "window changes replayed / states",
                    f"{server['replay']['window_changes']:,} / {server['replay']['states']:,}",
                ],
            ],
        )
        probe = server["open_loop"].get("slowest_healthz")
        if probe:
            lines += [
                "",
                f"Event loop probe (GET /healthz {server['open_loop']['GET /healthz']['sent']:,} times): slowest {probe['ms']} ms, {probe['at_s']} s into the load.",
            ]
        slow = ws.get("slowest_awards") or []
        if slow:
            lines += [
                "",
                "Slowest awards to their last window (seconds after the first award: ms): "
                + ", ".join(f"{s['committed_at_s']} s: {s['ms']}" for s in slow)
                + ".",
            ]
        lines += ["", others_line(server.get("usage_others") or {}), ""]
    lines += profile_lines(server)
    return "\n".join(lines)

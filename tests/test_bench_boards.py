"""`python -m bench boards awards|rollover` at tiny size, end to end: the report's shape and the
correctness checks (every award and read answered, awards in the period of their time), never speed."""

from __future__ import annotations

import gc
from pathlib import Path

from bench import boards, rollover

from .bench_cli import run_bench


def test_tiny_awards_run_compares_three_boards_with_one_and_the_baselines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = ("--rounds", "2", "--awards", "150", "--award-seconds", "1", "--read-seconds", "1", "--users", "50")
    result = run_bench(
        out, "boards", "awards", "--mode", "embedded", *options, "--players", "random", "--timeout", "100", within=130
    )
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]
    report = (out / "result.md").read_text()
    assert report.startswith("### Scoreboard boards: awards on 1 and 3 boards, embedded")
    assert "150 awards per action by 50 players drawn at random" in report
    assert "0.0 writes' notices skipped" in report
    assert result["awards_on"] == {
        "AWARD_ONE_BOARD": ["global"],
        "AWARD_THREE_BOARDS": ["global", "side-1", "side-2"],
    }

    rounds = result["server"]["rounds"]
    assert len(rounds) == 2
    for one in rounds:
        for action in ("AWARD_ONE_BOARD", "AWARD_THREE_BOARDS"):
            phase = one[action]
            assert 0 < phase["ok"] == phase["sent"] <= 150 and phase["errors"] == {}
            assert phase["server_cpu_us_per_request"] > 0
            assert phase["stores_cpu_us_per_award"] >= 0  # embedded: the machine's idle Redis and PostgreSQL
            assert phase["database_round_trips_per_award"] > 0  # from the server's metrics
            assert phase["overtake_notices_per_award"] >= 0  # read from them too (a small run may pass nobody)
            assert phase["overtake_skips_per_award"] == 0  # nor does it pile up writes whose notices wait
        assert one["GET /api/v1/scoreboard/top"]["ok"] > 0
        assert one["GET /hello"]["ok"] > 0
    ratios = ("three_vs_one_boards_throughput", "read_vs_hello", "three_vs_one_boards_cpu_efficiency")
    for name in (*ratios, "three_vs_one_boards_box_cpu_efficiency"):
        ratio = result["ratios"][name]
        assert len(ratio["rounds"]) == 2 and ratio["min"] <= ratio["median"] <= ratio["max"]
    assert result["server"]["server_exit_code"] == 0


def test_tiny_rollover_run_crosses_a_period_boundary_under_load(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The boundary is the next whole minute at least 10 s away: up to a minute of waiting.
    options = ("--users", "500", "--lead", "10", "--before", "4", "--after", "2", "--keep", "1", "--timeout", "110")
    result = run_bench(out, "boards", "rollover", "--mode", "embedded", *options, within=140)
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]
    assert (out / "result.md").read_text().startswith("### Scoreboard boards: rollover of 500 entries, embedded")

    periods = result["periods"]
    assert periods["before"] != periods["after"]
    assert set(result["award_periods"]) == {periods["before"], periods["after"]}
    assert result["board"]["keep_periods"] == 1 and result["entries_after"]["previous"] == 500  # still readable
    assert len(result["slowest"]) == 8 and {"kind", "ms", "at_s"} == set(result["slowest"][0])
    assert result["entries_after"]["current"] == result["new_period_users_awarded"] > 0
    for kind in ("award", "initialize", "around", "range", "top", "reads"):
        assert set(result["windows"][kind]) == {"before", "around", "after"}
        assert result["windows"][kind]["around"]["count"] > 0
    assert set(result["targets"]) == {
        "award_max_ms_around_boundary",
        "initialize_max_ms_around_boundary",
        "reads_max_ms_around_boundary",
    }


def test_the_unlink_gets_a_window_and_targets_of_its_own(tmp_path: Path) -> None:
    log = tmp_path / "scoreboard.log"
    log.write_text(
        '{"timestamp":"2026-12-03T23:38:00.500Z","level":"INFO","message":"leaderboards rebuilt"}\n'
        "not json, unlinked\n"
        '{"timestamp":"2026-12-03T23:38:33.063Z","level":"INFO","logger":"app.ranking.sweep",'
        '"message":"unlinked 2 Redis keys of board periods no longer readable"}\n'
    )
    boundary = 1796341080  # 2026-12-03T23:38:00Z
    found = rollover.unlinked_line(log)
    assert found is not None and found[1] == 2 and round(found[0] - boundary, 3) == 33.063
    assert rollover.unlinked_line(tmp_path / "absent.log") is None
    load = rollover._Load()
    for at, ms in ((boundary - 5, 3.0), (boundary, 4.0), (boundary + 33.5, 70.0), (boundary + 40, 5.0)):
        for kind in ("award", "initialize", "around"):
            load.add(kind, at, ms, True)
    spans = rollover.windows(load, boundary, boundary - 10, boundary + 50, found[0])
    assert spans["award"]["unlink"]["count"] == 1 and spans["reads"]["unlink"]["max_ms"] == 70.0
    targets = rollover.rollover_targets({"windows": spans})
    assert targets["award_max_ms_around_boundary"]["pass"] is True
    assert targets["award_max_ms_at_unlink"] == {"value": 70.0, "limit": 50.0, "pass": False}
    assert "award_max_ms_at_unlink" not in rollover.rollover_targets(
        {"windows": rollover.windows(load, boundary, 0, 1)}
    )


def test_rollover_samples_stay_out_of_the_collectors_way() -> None:
    """A run keeps every request's sample: tracked by the collector, each full collection of the
    bench walked them all, a pause its requests in flight counted as the server's."""
    load = rollover._Load()
    load.add("award", 1.0, 2.0, True)
    sample = load.samples["award"][0]
    assert (sample.at, sample.ms, sample.ok) == (1.0, 2.0, True)
    assert not gc.is_tracked(sample)


def test_awards_come_from_the_players_in_turn_or_drawn_at_random() -> None:
    """In turn: lockstep, every player once before anyone again. At random: seeded by the tag, so
    a round's plan is the same in every set-up, and a player may come twice before another once."""
    bearers = [f"bearer-{i}" for i in range(5)]
    turns = boards._plan(bearers, "AWARD_ONE_BOARD", 10, "r0")
    assert [a.bearer for a in turns] == bearers + bearers
    drawn = [a.bearer for a in boards._plan(bearers, "AWARD_ONE_BOARD", 200, "r0", "random")]
    assert drawn == [a.bearer for a in boards._plan(bearers, "AWARD_ONE_BOARD", 200, "r0", "random")]
    assert drawn != [a.bearer for a in boards._plan(bearers, "AWARD_ONE_BOARD", 200, "r1", "random")]
    assert set(drawn) == set(bearers) and drawn[:10] != bearers + bearers
    assert len({a.action_id for a in boards._plan(bearers, "AWARD_ONE_BOARD", 200, "r0", "random")}) == 200


def test_a_scrape_gives_the_round_trips_notices_and_skipped_writes() -> None:
    scrape = "\n".join(
        (
            "# TYPE scoreboard_overtake_notices_total counter",
            "scoreboard_overtake_notices_total 1234.0",
            "scoreboard_overtakes_skipped_total 7.0",
            'scoreboard_redis_round_trip_seconds_count{kind="award"} 56.0',
            "scoreboard_overtakes_skipped_created 1.7e+09",
        )
    )
    assert boards._metric_counts(scrape) == {
        "overtake_notice": 1234.0,
        "overtake_skip": 7.0,
        "redis_round_trip": 56.0,
    }

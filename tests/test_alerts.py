"""The alert rules (deploy/prometheus/alerts.yml): valid for Prometheus, each alert unit-tested in
promtool's format, and every metric they read exported by the server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .metric_names import exported, named_in

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"
# The alerts: error rate, p95 (two thresholds), Redis, the database pool, a spike of one
# action's awards, rebuilds, slow-client drops.
EXPECTED = {
    "ScoreboardErrorRateHigh",
    "ScoreboardLatencyP95Critical",
    "ScoreboardLatencyP95High",
    "ScoreboardRedisUnavailable",
    "ScoreboardDatabasePoolExhausted",
    "ScoreboardScoreUpdateSpike",
    "ScoreboardRebuildFailing",
    "ScoreboardSlowClientDropsRising",
}


def promtool() -> str:
    """Debian's promtool (package `prometheus`, which .ci/run installs); under CI=true its absence fails."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed: apt-get install prometheus")
    return found


def _promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], check=False, capture_output=True, text=True, timeout=60, cwd=RULES_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_are_valid() -> None:
    assert "SUCCESS: 9 rules found" in _promtool("check", "rules", RULES.name)


def test_rules_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", RULE_TESTS.name)


def test_every_alert_is_tested_firing_and_severity_set() -> None:
    rules = RULES.read_text()
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", rules, re.MULTILINE))
    assert alerts == EXPECTED
    tests = RULE_TESTS.read_text()
    for alert in alerts:
        # At least one case where it fires (exp_alerts with labels), not only quiet ones.
        firing = re.search(rf"alertname: {alert}\n\s*exp_alerts:\n\s*- exp_labels:", tests)
        assert firing, f"{alert} is never tested firing"
    assert rules.count("severity: critical") + rules.count("severity: warning") == len(alerts)


def expressions(rules: str) -> list[str]:
    """The `expr` of every rule: the key's line and the lines indented under it."""
    found: list[str] = []
    lines = rules.splitlines()
    for i, line in enumerate(lines):
        key = line.find("expr:")
        if key < 0:
            continue
        body = [line[key + len("expr:") :].strip(" |")]
        for more in lines[i + 1 :]:
            if more.strip() and len(more) - len(more.lstrip()) <= key:
                break
            body.append(more.strip())
        found.append(" ".join(body).strip())
    return found


def test_rules_read_only_exported_metrics() -> None:
    exprs = expressions(RULES.read_text())
    assert len(exprs) == 9
    names = set().union(*(named_in(expr) for expr in exprs))
    assert names and names <= exported(), names - exported()

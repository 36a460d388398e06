"""The success envelope."""

from __future__ import annotations

import msgspec

from app.api.envelope import ok
from app.api.site_data import HealthData


def test_ok_wraps_data_as_json() -> None:
    resp = ok(HealthData(status="ok"))
    assert resp.content_type == "application/json" and resp.status == 200
    assert isinstance(resp.body, bytes)
    assert msgspec.json.decode(resp.body) == {"success": True, "data": {"status": "ok"}}

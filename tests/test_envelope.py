"""The success envelope, and the cached one for answers served many times over."""

from __future__ import annotations

import msgspec

from app.envelope import LastOk, ok
from app.models import HealthData


def test_ok_wraps_data_as_json() -> None:
    resp = ok(HealthData(status="ok"))
    assert resp.content_type == "application/json" and resp.status == 200
    assert isinstance(resp.body, bytes)
    assert msgspec.json.decode(resp.body) == {"success": True, "data": {"status": "ok"}}


def test_last_ok_encodes_an_object_once_and_each_new_one_again() -> None:
    render = LastOk()
    first, second = HealthData(status="ok"), HealthData(status="ready")
    a, b = render(first), render(first)
    assert a is not b and a.body is b.body  # a fresh response, the same encoded body
    c = render(second)
    assert isinstance(c.body, bytes) and msgspec.json.decode(c.body)["data"] == {"status": "ready"}
    # An equal but different object is encoded again (identity, not equality, is the key).
    d = render(HealthData(status="ready"))
    assert d.body is not c.body and d.body == c.body
    assert render(first).body == a.body

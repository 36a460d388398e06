"""Schemathesis checks of our own, loaded by tests/schemathesis.toml (`hooks`) for tests/test_fuzz.py.

Not a test module: schemathesis imports it into its own process."""

from __future__ import annotations

from typing import Any

import schemathesis

Case = schemathesis.Case[Any]

# A plain HTTP client cannot complete a WebSocket handshake: every request it sends there is
# refused with 400 VALIDATION_ERROR, as documented.
HANDSHAKE_ONLY = frozenset({"GET /ws/scoreboard"})
# The operator page's forms take a browser's session cookie, the CSRF token of the page that holds
# the form and this site's Origin, none of which a generated request has: they answer 401 or 403
# (tests/test_admin_page.py and tests/test_browser_admin.py drive them signed in).
SIGNED_IN_FORMS = frozenset(
    {
        "POST /admin/session",
        "POST /admin/session/end",
        "POST /admin/held/{heldId}/approve",
        "POST /admin/held/{heldId}/reject",
    }
)
# Fields whose rules no JSON Schema can state (a cron expression that fires at least every five
# years, a name in tzdata's list, an incr or an operator's adjustment whose sum with the stored
# value would leave ±2^53), as the document says; their refusal names them in `details.field`.
BEYOND_THE_SCHEMA = {
    "POST /api/v1/admin/boards": frozenset({"reset", "timezone"}),
    "POST /api/v1/boards/{board}/scores": frozenset({"score"}),
    "POST /api/v1/admin/boards/{board}/scores/{userId}/adjust": frozenset({"delta"}),
}


def _is_positive(case: Case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _error(response: schemathesis.Response) -> Any:
    try:
        return response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None


def _beyond_the_schema(case: Case, error: Any) -> bool:
    details = error.get("details")
    field = details.get("field") if isinstance(details, dict) else None
    return field in BEYOND_THE_SCHEMA.get(case.operation.label, ())


@schemathesis.check
def schema_valid_is_never_malformed(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A request the document calls valid may be refused by a rule of the contract (an action id
    that is not the token's: 400 ACTION_MISMATCH), never as malformed (400 VALIDATION_ERROR):
    that would mean the document and the server disagree about the shape of a request. The fields of
    BEYOND_THE_SCHEMA are the exception the document states."""
    if case.operation.label in HANDSHAKE_ONLY or not _is_positive(case):
        return None
    error = _error(response)
    if response.status_code == 400 and isinstance(error, dict) and error.get("code") == "VALIDATION_ERROR":
        if _beyond_the_schema(case, error):
            return True
        raise AssertionError(f"A request valid by the document was refused as malformed: {response.text}")
    return True


@schemathesis.check
class EveryOperationSucceeds:
    """Each operation tested answered a success at least once: the run reached past the
    refusals (authentication, validation) into what every route actually does."""

    def __init__(self) -> None:
        self.tested: set[str] = set()
        self.succeeded: set[str] = set()

    def after_response(self, ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
        label = case.operation.label
        if label in HANDSHAKE_ONLY or label in SIGNED_IN_FORMS:
            return
        self.tested.add(label)
        if 200 <= response.status_code < 300:
            self.succeeded.add(label)

    def after_run(self, ctx: schemathesis.CheckContext) -> None:
        missing = sorted(self.tested - self.succeeded)
        if missing:
            raise AssertionError("Never answered a success: " + ", ".join(missing))

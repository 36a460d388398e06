"""The operator page's query strings and forms, declared once: they validate what a browser sends and
feed the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from .fields import Id, Reason, _Model
from .held_data import HeldId, HeldStatus

# What the page says after a form's redirect back to it (`done`), about the held award `id`.
Result = Literal["approved", "rejected", "signed-out"]
Csrf = Annotated[
    str,
    Meta(
        pattern=r"^[0-9a-f]{64}(?!\n)$",
        description="The form's CSRF token, as the page that holds the form gives it (bound to the session)",
        examples=["0" * 64],
    ),
]
DecisionReason = Annotated[
    Reason,
    Meta(description="Why, kept with the decision: 1-500 characters on one line", examples=["Verified the replay"]),
]


class AdminHomeQuery(_Model):
    held: Annotated[HeldStatus, Meta(description="Which held awards the queue shows")] = "pending"
    after: Annotated[int, Meta(ge=0, le=2**63 - 1, description="Only the held awards numbered after this id")] = 0
    done: (
        Annotated[Result, Meta(description="The result of the form just sent, said in one line at the top")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    id: Annotated[HeldId, Meta(description="The held award that result is about")] | msgspec.UnsetType = msgspec.UNSET


class AdminUserQuery(_Model):
    id: Id


class _Form(_Model, forbid_unknown_fields=True):
    """A form of the page: its fields and no others (a browser sends no others)."""


class SignInForm(_Form):
    """An operator's JWT, whose `roles` claim holds auth.admin_role; kept in the session cookie only."""

    token: Annotated[str, Meta(min_length=1, max_length=16384, description="The admin JWT", examples=["eyJ..."])]


class SessionForm(_Form):
    """A form sent within a session: it carries the session's CSRF token."""

    csrf: Csrf


class SignOutForm(SessionForm):
    pass


class DecisionForm(SessionForm):
    """An approval or rejection of a held award, from the queue's form."""

    reason: DecisionReason

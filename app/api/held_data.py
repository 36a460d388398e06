"""The shapes of held awards: an update's 202, the operators' queue and their decisions."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .award_data import AwardBoard
from .fields import Reason, Timestamp, Worth, _Model

HeldId = Annotated[int, Meta(ge=1, le=2**63 - 1, description="A held award's id")]
HeldStatus = Literal["pending", "approved", "rejected"]


class HeldData(_Model):
    """202 of an update: the award is held for an operator (the token spent, the action completed,
    nothing on the boards) until approved (it lands) or rejected."""

    status: Literal["held"]
    id: HeldId
    user_id: str
    action_type: str
    action_id: str
    score_increment: Worth


# The rules that held an award, as the operators' held list and the user's export show them.
HoldingRules = Annotated[
    list[str],
    Meta(
        description="The cheat rules that held it: hold_over_per_hour, hold_over, hold_within_s, "
        "max_score_per_hour, velocity"
    ),
]


class HeldBoard(_Model):
    """A board period a held award was to land on when it was held."""

    board: str
    period: str


class HeldAwardData(_Model):
    """A held award: whose, for what, where it was to land, and its operator's decision once made.
    `landed`, in an approval's answer only: what it did on each board it landed on."""

    id: HeldId
    user_id: str
    action_type: str
    action_id: str
    score: Worth
    boards: list[HeldBoard]
    status: HeldStatus
    created_at: Timestamp
    decided_by: Annotated[str | None, Meta(description="The operator's user id")]
    reason: str | None
    decided_at: Timestamp | None
    landed: Annotated[list[AwardBoard], Meta(description="Where an approval landed it (empty otherwise)")]
    rules: HoldingRules


class HeldListData(_Model):
    """Held awards of a status, oldest first; `nextAfter` is the `after` of the next page (null: no more)."""

    held: list[HeldAwardData]
    next_after: int | None


class HeldQuery(_Model):
    status: Annotated[HeldStatus, Meta(description="Which held awards (default the pending ones)")] = "pending"
    after: Annotated[int, Meta(ge=0, le=2**63 - 1, description="Only those numbered after this id")] = 0
    limit: Annotated[int, Meta(ge=1, le=100, description="At most this many")] = 100


class DecisionRequest(_Model):
    """Why an operator approves or rejects a held award, kept with the decision."""

    reason: Annotated[Reason, Meta(examples=["Verified the replay"])]


class ApprovePath(_Model):
    held_id: Annotated[HeldId, Meta(examples=[7])]


class RejectPath(_Model):
    # Another example than the approval's: a held award is decided once.
    held_id: Annotated[HeldId, Meta(examples=[8])]

"""The shapes of trusted servers' calls: score writes with their Idempotency-Key, and attestations."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .fields import Id, Rank, Timestamp, Value, _Model


class ScoreWriteRequest(_Model):
    """A trusted server's value for one user in the board's current period, applied by the board's
    operator: incr adds it, best keeps it when better (score, then subscore, the board's way), set
    keeps it. A user unknown so far is created. On an incr board a sum that would leave ±2^53 is
    refused with 400 VALIDATION_ERROR naming `score` (details.newScore) and writes nothing."""

    user_id: Id
    score: Value
    subscore: (
        Annotated[Value, Meta(description="Breaks ties of score, the board's way (absent counts as 0)")] | None
    ) = None
    metadata: (
        Annotated[
            dict[str, Any],
            Meta(description="A JSON object of at most 1 KiB (as compact JSON), shown with the entry"),
        ]
        | None
    ) = None


class ScoreWriteData(_Model):
    """What a trusted write did: `improved` is true when the stored value changed; `previousScore`
    is null on a first entry in the period."""

    board: str
    period: str
    user_id: str
    previous_score: int | None
    new_score: int
    rank: Rank
    improved: bool


MAX_IDEMPOTENCY_KEY_CHARS = 100
IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        # What a header carries as sent: printable ASCII, spaces within (HTTP trims them at the ends).
        pattern=r"^[!-~](?:[ -~]*[!-~])?(?!\n)$",
        description="1-100 printable ASCII characters naming this write (spaces within; given once). A retry with "
        "the same key and body, "
        "within limits.idempotency_hours, answers the first answer again and changes nothing; the same key "
        "with another body is 409 IDEMPOTENCY_CONFLICT",
        examples=["race-7f3a-lap-2"],
    ),
]


class ScoreWriteHeaders(msgspec.Struct, kw_only=True):
    """The headers a trusted write requires."""

    idempotency_key: IdempotencyKey = msgspec.field(name="Idempotency-Key")


class AttestRequest(_Model):
    """The player whose action a trusted server attests."""

    user_id: Id


class AttestData(_Model):
    """An attestation held: the first one of this user's action, whichever attest made it, until the
    award that needs it spends it."""

    action_id: str
    user_id: str
    attested_at: Timestamp


class ActionPath(_Model):
    action_id: Annotated[Id, Meta(examples=["race-41"])]

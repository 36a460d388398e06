"""Trusted servers' routes: score writes and attestations."""

from __future__ import annotations

from ... import errors as e
from ...settings import ACTIONS_ATTEST, SCORES_WRITE
from .. import examples as x
from .. import views
from ..board_data import BoardPath
from ..trusted_data import ActionPath, AttestData, AttestRequest, ScoreWriteData, ScoreWriteHeaders, ScoreWriteRequest
from .endpoint import AUTH_ERRORS, Endpoint, Link

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="POST",
        path="/api/v1/boards/{board}/scores",
        handler=views.board_scores,
        example=x.SCORE_WRITE,
        summary="A trusted server's score write in the board's current period, applied by the board's operator "
        "once per Idempotency-Key",
        response=ScoreWriteData,
        request=ScoreWriteRequest,
        path_params=BoardPath,
        headers=ScoreWriteHeaders,
        auth="service",
        scope=SCORES_WRITE,
        errors=(
            *AUTH_ERRORS,
            e.Forbidden,
            e.Disqualified,
            e.BoardNotFound,
            e.IdempotencyConflict,
            e.ServiceUnavailable,
        ),
        tag="trusted servers",
        links=(
            Link(
                name="remove",
                target=views.remove_entry,
                description="An operator takes the written entry off its board period",
                parameters={
                    "board": "$response.body#/data/board",
                    "period": "$response.body#/data/period",
                    "userId": "$response.body#/data/userId",
                },
            ),
            Link(
                name="adjust",
                target=views.adjust,
                description="An operator corrects the written entry (in the current period, where it was written)",
                parameters={"board": "$response.body#/data/board", "userId": "$response.body#/data/userId"},
            ),
        ),
    ),
    Endpoint(
        method="POST",
        path="/api/v1/actions/{actionId}/attest",
        handler=views.attest,
        example=x.ATTEST,
        summary="A trusted server attests a user's action: an action marked attest in the catalog awards only "
        "once attested. Once per user and action (a second attest answers the first), spent by the award",
        response=AttestData,
        request=AttestRequest,
        path_params=ActionPath,
        auth="service",
        scope=ACTIONS_ATTEST,
        errors=(*AUTH_ERRORS, e.Forbidden, e.ServiceUnavailable),
        tag="trusted servers",
    ),
)

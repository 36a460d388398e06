"""The routes of an award: the action catalog, initialize, update, the default board's top, a user's score."""

from __future__ import annotations

from ... import errors as e
from .. import examples as x
from .. import views
from ..award_data import (
    ActionsData,
    InitializeData,
    InitializeRequest,
    TopData,
    TopQuery,
    UpdateData,
    UpdateRequest,
    UserScoreData,
)
from ..fields import UserPath
from ..held_data import HeldData
from .endpoint import AUTH_ERRORS, Endpoint, Link

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/api/v1/scoreboard/top",
        handler=views.top,
        example=x.TOP,
        summary="The top of the board (default 10, at most 100); cacheable by browsers and CDNs, "
        "revalidated with `If-None-Match` (HEAD answers the same headers)",
        response=TopData,
        query=TopQuery,
        errors=(e.ValidationFailed,),
        cache="public",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/actions",
        handler=views.actions,
        example=x.ACTIONS,
        summary="The action catalog: every actionType a client may initialize, with the score it awards, the "
        "minimum time between initialize and update, the boards it awards on, and whether a trusted server "
        "must attest it first",
        response=ActionsData,
    ),
    Endpoint(
        method="POST",
        path="/api/v1/actions/initialize",
        handler=views.initialize,
        example=x.INITIALIZE,
        summary="Start an action: get a one-time action token worth the catalog's score",
        response=InitializeData,
        request=InitializeRequest,
        auth="user",
        errors=(
            *AUTH_ERRORS,
            e.Forbidden,
            e.Disqualified,
            e.InvalidAction,
            e.ActionAlreadyCompleted,
            e.ServiceUnavailable,
        ),
        links=(
            Link(
                name="complete",
                target=views.update,
                description="Complete the action with its token",
                body={"actionToken": "$response.body#/data/actionToken", "actionId": "$request.body#/actionId"},
            ),
        ),
    ),
    Endpoint(
        method="POST",
        path="/api/v1/scoreboard/update",
        handler=views.update,
        example=x.UPDATE,
        summary="Complete an action: consume its token and award its score exactly once; 202 when a cheat rule "
        "holds the award for an operator (token spent, nothing on the boards until approved)",
        response=UpdateData,
        accepted=HeldData,
        accepted_links=(
            Link(
                name="approve",
                target=views.approve_held,
                description="An operator lands the held award",
                parameters={"heldId": "$response.body#/data/id"},
            ),
            Link(
                name="reject",
                target=views.reject_held,
                description="An operator rejects the held award",
                parameters={"heldId": "$response.body#/data/id"},
            ),
        ),
        request=UpdateRequest,
        auth="user",
        errors=(
            *AUTH_ERRORS,
            e.InvalidToken,
            e.TokenExpired,
            e.Forbidden,
            e.Disqualified,
            e.TokenAlreadyUsed,
            e.ActionAlreadyCompleted,
            e.InvalidAction,
            e.ActionMismatch,
            e.ActionTooFast,
            e.NotAttested,
            e.RateLimited,  # per user as well as per IP
            e.ServiceUnavailable,
        ),
        links=(
            Link(
                name="score",
                target=views.user_score,
                description="The awarded user's score and rank",
                parameters={"userId": "$response.body#/data/userId"},
            ),
        ),
    ),
    Endpoint(
        method="GET",
        path="/api/v1/users/{userId}/score",
        handler=views.user_score,
        example=x.USER_SCORE,
        summary="A user's score, rank and percentile (rank null before the first award)",
        response=UserScoreData,
        path_params=UserPath,
        auth="user",
        errors=(*AUTH_ERRORS, e.UserNotFound),
        cache="private",
    ),
)

"""The route table: each endpoint declared once, for the router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import errors as e
from ..config import ACTIONS_ATTEST, SCORES_WRITE, Scope
from . import admin_models as am
from . import admin_page, session, stream, views
from . import examples as x
from . import moderation_data as md
from . import operator_examples as ox
from . import personal_data as pd
from .award_data import (
    ActionsData,
    InitializeData,
    InitializeRequest,
    TopData,
    TopQuery,
    UpdateData,
    UpdateRequest,
    UserScoreData,
)
from .board_data import (
    AroundData,
    AroundPath,
    AroundQuery,
    BoardChange,
    BoardCreate,
    BoardDetail,
    BoardPath,
    BoardsData,
    BoardTopData,
    BoardTopQuery,
    LookupData,
    LookupRequest,
    OperatorBoardPath,
    PeriodsData,
    RanksData,
    RanksQuery,
    RetiredData,
    UserBoardsData,
)
from .edge import LIMITED_PREFIX, expect_continue
from .fields import UserPath
from .held_data import ApprovePath, DecisionRequest, HeldAwardData, HeldData, HeldListData, HeldQuery, RejectPath
from .live_data import LiveQuery, PageQuery, StreamHeaders, StreamQuery
from .notice_data import NotificationsData, NotificationsQuery
from .site_data import HealthData, StaticPath, SwaggerUiPath
from .trusted_data import ActionPath, AttestData, AttestRequest, ScoreWriteData, ScoreWriteHeaders, ScoreWriteRequest


@dataclass(frozen=True, kw_only=True)
class Link:
    """How a success of one endpoint feeds another (an OpenAPI link, which clients and the
    fuzzer's stateful phase follow). Values are OpenAPI runtime expressions."""

    name: str
    target: Handler  # the endpoint it leads to; its handler's name is the operationId
    description: str
    parameters: Mapping[str, str] = field(default_factory=dict)  # the target's parameters
    body: Mapping[str, str] = field(default_factory=dict)  # fields of the target's request body


# Who may call an endpoint: anyone (None); a user, by a bearer JWT; an operator, by a bearer JWT
# whose `roles` claim holds auth.admin_role; a trusted server, by a service key.
Caller = Literal["user", "operator", "service"] | None


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One route: what it takes, what it answers, which contract errors it can give."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type | None = None  # the `data` model of a JSON success
    status: int = 200  # of a success
    accepted: type | None = None  # the `data` model of a 202 it may answer instead (a held award)
    accepted_links: tuple[Link, ...] = ()  # links of that 202
    media: str | None = "application/json"  # of a success; None: it has no body
    request: type | None = None
    form: type | None = None  # the `application/x-www-form-urlencoded` body of a browser's form
    query: type | None = None
    path_params: type | None = None
    headers: type | None = None  # request headers it requires, one field per header
    auth: Caller = None
    scope: Scope | None = None  # what a trusted server's key needs (auth "service")
    errors: tuple[type[e.ApiError], ...] = ()
    example: x.Example | None = None  # of the request body and the success
    links: tuple[Link, ...] = ()
    tag: str = "scoreboard"
    # "public": a success carries `ETag` and `Cache-Control: public, max-age=N` (shared caches and
    # CDNs may keep it) and `If-None-Match` naming the current tag answers 304; "private": a
    # success carries `Cache-Control: private, no-store`.
    cache: Literal["public", "private"] | None = None
    # A page of the operator page, for a person in a browser: its refusals are pages (text/html)
    # naming the contract's code, not the envelope.
    browser: bool = False

    def __post_init__(self) -> None:
        if (self.auth == "service") != (self.scope is not None):
            raise ValueError(f"{self.method} {self.path}: a scope names what a service key needs, and only that")

    def answers(self) -> tuple[type[e.ApiError], ...]:
        """Every error the endpoint can give: its own, and those of the layers in front of its
        handler, which answer before it runs."""
        before: list[type[e.ApiError]] = []
        if self.request is not None or self.form is not None:
            before.append(e.PayloadTooLarge)  # aiohttp refuses a body over server.max_body_bytes
        if self.path.startswith(LIMITED_PREFIX):
            # The per-IP limit of the edge, kept in Redis in the Redis modes (503 while it is down).
            before += [e.RateLimited, e.ServiceUnavailable]
        return tuple(dict.fromkeys((*self.errors, *before)))


_AUTH_ERRORS: tuple[type[e.ApiError], ...] = (e.Unauthorized, e.ValidationFailed)
# An operator's correction of one user's entry in one board period.
_ENTRY_ERRORS = (
    *_AUTH_ERRORS,
    e.Forbidden,
    e.BoardNotFound,
    e.PeriodNotFound,
    e.UserNotFound,
    e.NotFound,
    e.ServiceUnavailable,
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/",
        handler=views.page,
        example=x.PAGE,
        summary="The live top-10 page of a board (`?board=`, default the default board) with a tab per "
        "board and a period selector: rendered on the server, kept live over the WebSocket",
        media="text/html",
        query=PageQuery,
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/ws/scoreboard",
        handler=session.websocket,
        summary="WebSocket of live updates: 101 on a handshake, then the messages of docs/live.md "
        f"(an invalid `token` closes with {e.CLOSE_UNAUTHORIZED}); a request that is not a handshake answers 400",
        status=101,
        media=None,
        query=LiveQuery,
        errors=(e.ValidationFailed, e.Forbidden, e.RateLimited, e.ServiceUnavailable),
        tag="web",
    ),
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
            *_AUTH_ERRORS,
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
            *_AUTH_ERRORS,
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
        errors=(*_AUTH_ERRORS, e.UserNotFound),
        cache="private",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards",
        handler=views.boards,
        example=x.BOARDS,
        summary="Every board in use, the default first, each with its current period",
        response=BoardsData,
        tag="boards",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}",
        handler=views.board,
        example=x.BOARD,
        summary="One board, with how many entries its current period has",
        response=BoardDetail,
        path_params=BoardPath,
        errors=(e.ValidationFailed, e.BoardNotFound),
        tag="boards",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}/top",
        handler=views.board_top,
        example=x.BOARD_TOP,
        summary="The top of a board in a period (`current`, `previous` or a kept period's id); cacheable "
        "as GET /scoreboard/top",
        response=BoardTopData,
        path_params=BoardPath,
        query=BoardTopQuery,
        errors=(e.ValidationFailed, e.BoardNotFound, e.PeriodNotFound),
        tag="boards",
        cache="public",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}/ranks",
        handler=views.board_ranks,
        example=x.RANKS,
        summary="The entries at ranks from .. from+limit-1, and `total` on the board",
        response=RanksData,
        path_params=BoardPath,
        query=RanksQuery,
        errors=(e.ValidationFailed, e.BoardNotFound, e.PeriodNotFound),
        tag="boards",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}/around/{userId}",
        handler=views.board_around,
        example=x.AROUND,
        summary="A user's rank and the entries from rank-radius to rank+radius (rank null and no entries "
        "when the user is not on the board)",
        response=AroundData,
        path_params=AroundPath,
        query=AroundQuery,
        errors=(e.ValidationFailed, e.BoardNotFound, e.PeriodNotFound),
        tag="boards",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/boards/{board}/lookup",
        handler=views.board_lookup,
        example=x.LOOKUP,
        summary="The entries of these users (1-100 ids) that are on the board, by rank: a friends' board",
        response=LookupData,
        request=LookupRequest,
        path_params=BoardPath,
        errors=(e.ValidationFailed, e.BoardNotFound, e.PeriodNotFound),
        tag="boards",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}/periods",
        handler=views.board_periods,
        example=x.PERIODS,
        summary="The current period and the kept ones that have entries, newest first",
        response=PeriodsData,
        path_params=BoardPath,
        errors=(e.ValidationFailed, e.BoardNotFound),
        tag="boards",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/users/{userId}/boards",
        handler=views.user_boards,
        example=x.USER_BOARDS,
        summary="A user's score, rank and percentile in the current period of every board they are on",
        response=UserBoardsData,
        path_params=UserPath,
        auth="user",
        errors=(*_AUTH_ERRORS, e.UserNotFound),
        tag="boards",
        cache="private",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/users/me/notifications",
        handler=views.notifications,
        example=x.NOTIFICATIONS,
        summary="The caller's notices (`overtaken`: who passed them on which board), the newest 100 of the "
        "last 7 days, those after `after` (an id), oldest first; the WebSocket's notifications channel "
        "replays the same",
        response=NotificationsData,
        query=NotificationsQuery,
        auth="user",
        errors=_AUTH_ERRORS,
        tag="boards",
        cache="private",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/users/me/export",
        handler=views.export,
        example=x.EXPORT,
        summary="Everything kept about the caller, as one document: the user, their entries on every board and "
        "period, awards, score changes, action tokens and notices",
        response=pd.ExportData,
        auth="user",
        errors=(*_AUTH_ERRORS, e.UserNotFound),
        tag="privacy",
        cache="private",
    ),
    Endpoint(
        method="DELETE",
        path="/api/v1/users/me",
        handler=views.erase_self,
        example=x.ERASED,
        summary="Erase the caller: off every board, no row keeps their id or name (the history keeps a "
        "pseudonym); afterwards the id is 404 everywhere until it is used again",
        response=pd.ErasedData,
        auth="user",
        errors=(*_AUTH_ERRORS, e.UserNotFound, e.ServiceUnavailable),
        tag="privacy",
    ),
    Endpoint(
        method="DELETE",
        path="/api/v1/users/{userId}",
        handler=views.erase_user,
        example=x.ERASED,
        summary="Erase another user, as DELETE /users/me does (`me` always means the caller)",
        response=pd.ErasedData,
        path_params=UserPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/boards/{board}/stream",
        handler=stream.board_stream,
        example=x.STREAM,
        summary="The board's leaderboard channel as Server-Sent Events, for clients that cannot hold a "
        "WebSocket: `id:` the message's seq, `event:` its type, `data:` the whole message as the WebSocket "
        "sends it. It starts with a `leaderboard_update` snapshot, then every change of the top 10 or of its "
        "`total` of entries (bursts coalesced, the latest state always sent) and `period_ended`; `: keepalive` "
        "comments keep it open. A reconnect with `Last-Event-ID` goes on from the next id with a fresh snapshot. The same connection limits as "
        "the WebSocket; a client too far behind is cut off",
        media="text/event-stream",
        query=StreamQuery,
        path_params=BoardPath,
        headers=StreamHeaders,
        errors=(e.BoardNotFound, e.ValidationFailed, e.RateLimited, e.ServiceUnavailable),
        tag="boards",
    ),
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
            *_AUTH_ERRORS,
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
        errors=(*_AUTH_ERRORS, e.Forbidden, e.ServiceUnavailable),
        tag="trusted servers",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/boards",
        handler=views.create_board,
        example=ox.CREATE_BOARD,
        summary="Create a board; it survives restarts and reaches every process within 5 s",
        response=BoardDetail,
        status=201,
        request=BoardCreate,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.BoardExists, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="PATCH",
        path="/api/v1/admin/boards/{board}",
        handler=views.change_board,
        example=ox.CHANGE_BOARD,
        summary="Change a board's title, kept periods or format, at once in this process and within 5 s in the others",
        response=BoardDetail,
        request=BoardChange,
        path_params=OperatorBoardPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="DELETE",
        path="/api/v1/admin/boards/{board}",
        handler=views.retire_board,
        example=ox.RETIRE_BOARD,
        summary="Retire a board: no longer listed, read or written, its id never used again; its history "
        "stays. Not the default board nor one the action catalog awards on (409 BOARD_IN_USE)",
        response=RetiredData,
        path_params=OperatorBoardPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.BoardInUse, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/admin/held",
        handler=views.held_awards,
        example=ox.HELD,
        summary="Awards held by a cheat rule (`[actions.X] hold_over_per_hour`), the pending ones unless "
        "`status`, oldest first, at most `limit` (100) after `after` (an id)",
        response=HeldListData,
        query=HeldQuery,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden),
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/held/{heldId}/approve",
        handler=views.approve_held,
        example=ox.APPROVE,
        summary="Approve a held award: it lands on its boards (in the period it was held in while that period is "
        "kept, else the current one) as an award does, ranks and live updates included. Decided once",
        response=HeldAwardData,
        request=DecisionRequest,
        path_params=ApprovePath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.NotFound, e.AlreadyDecided, e.Disqualified, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/held/{heldId}/reject",
        handler=views.reject_held,
        example=ox.REJECT,
        summary="Reject a held award: it never lands (its token stays spent, its action completed). Decided once",
        response=HeldAwardData,
        request=DecisionRequest,
        path_params=RejectPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.NotFound, e.AlreadyDecided, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/users/{userId}/disqualify",
        handler=views.disqualify,
        example=ox.DISQUALIFY,
        summary="Disqualify a user: at once on no board and no kept period (live viewers see them go), their "
        "initialize, update and trusted writes refused with 403 DISQUALIFIED until reinstated; their entries "
        "and history stay in the database. Asked again, it is recorded again and changes nothing",
        response=md.UserModerationData,
        request=md.ModerationRequest,
        path_params=md.ModeratedUserPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/users/{userId}/reinstate",
        handler=views.reinstate,
        example=ox.REINSTATE,
        summary="Reinstate a user: every board and kept period shows them again as it would had they never "
        "left (awards that committed before the disqualification included); their writes are accepted again",
        response=md.UserModerationData,
        request=md.ModerationRequest,
        path_params=md.ModeratedUserPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/boards/{board}/scores/{userId}/adjust",
        handler=views.adjust,
        example=ox.ADJUST,
        summary="Add a signed `delta` to a user's entry in one period (`period`, default the current one): a "
        "correction row in the history naming the act, never an edit of older rows; ranks and live viewers "
        "follow. On an incr board a user without an entry gets one; on other boards 404 NOT_FOUND. A sum beyond "
        "±2^53 is 400 VALIDATION_ERROR naming `delta`",
        response=md.AdjustedData,
        request=md.AdjustRequest,
        path_params=md.AdjustPath,
        auth="operator",
        errors=_ENTRY_ERRORS,
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/boards/{board}/periods/{period}/entries/{userId}/remove",
        handler=views.remove_entry,
        example=ox.REMOVE_ENTRY,
        summary="Take one user's entry off one board period (`current`, `previous` or a kept period's id): a "
        "correction row takes its score back in the history, the act keeps the entry removed; the user may "
        "score there again. 404 NOT_FOUND when they have no entry there",
        response=md.RemovedData,
        request=md.ModerationRequest,
        path_params=md.EntryPath,
        auth="operator",
        errors=_ENTRY_ERRORS,
        tag="operators",
    ),
    Endpoint(
        method="POST",
        path="/api/v1/admin/boards/{board}/periods/{period}/wipe",
        handler=views.wipe_period,
        example=ox.WIPE,
        summary="Take every entry off one board period: a correction row for each in the history, the act "
        "keeps every entry removed (`details.removed`); live viewers see the period empty",
        response=md.WipedData,
        request=md.ModerationRequest,
        path_params=md.WipePath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.PeriodNotFound, e.ServiceUnavailable),
        tag="operators",
    ),
    Endpoint(
        method="GET",
        path="/api/v1/admin/users/{userId}/history",
        handler=views.user_history,
        example=ox.USER_HISTORY,
        summary="A user's history for operators: every change of their entries newest first (awards, trusted "
        "writes, corrections), `limit` (50, at most 100) after `after` (an id: the page goes on below it), the "
        "moderation acts on them (newest 100) and whether they are disqualified",
        response=md.UserHistoryData,
        query=md.HistoryQuery,
        path_params=md.ModeratedUserPath,
        auth="operator",
        errors=(*_AUTH_ERRORS, e.Forbidden, e.UserNotFound),
        tag="operators",
        cache="private",
    ),
    Endpoint(
        method="GET",
        path="/admin",
        handler=admin_page.admin_home,
        example=ox.ADMIN_HOME,
        summary="The operator page, in a browser: every board with its settings, and the held-award queue "
        "(`held`: pending, approved or rejected) with an approve and a reject form per pending award. Without a "
        "session, the sign-in form (POST /admin/session)",
        media="text/html",
        query=am.AdminHomeQuery,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden, e.ServiceUnavailable),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="GET",
        path="/admin/users",
        handler=admin_page.admin_user,
        example=ox.ADMIN_USER,
        summary="The operator page of one user: their entries on every board and period, their awards and "
        "score changes, their held awards. Without a session, the sign-in form",
        media="text/html",
        query=am.AdminUserQuery,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/session",
        handler=admin_page.admin_sign_in,
        example=ox.ADMIN_SIGN_IN,
        summary="Sign in to the operator page with an admin JWT (verified as a bearer is, its roles holding "
        "auth.admin_role): 303 to /admin with the session cookie (HttpOnly, SameSite=Strict, Path=/admin, "
        "Secure over https), which expires with the token. Otherwise the sign-in form again: 401 for a token "
        "that is not valid, 403 for one without the role or a form from another site",
        status=303,
        media=None,
        form=am.SignInForm,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/session/end",
        handler=admin_page.admin_sign_out,
        example=ox.ADMIN_SIGN_OUT,
        summary="Sign out of the operator page: the session cookie is cleared, 303 to /admin. A form of the "
        "page: the session, its CSRF token and this site's Origin are required (403 otherwise)",
        status=303,
        media=None,
        form=am.SignOutForm,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/held/{heldId}/approve",
        handler=admin_page.admin_approve_held,
        example=ox.ADMIN_DECISION,
        summary="The queue's approve form: the held award lands as POST /api/v1/admin/held/{heldId}/approve "
        "lands it, then 303 back to /admin, which says so. The session, its CSRF token and this site's Origin "
        "are required (403 otherwise)",
        status=303,
        media=None,
        form=am.DecisionForm,
        path_params=ApprovePath,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden, e.NotFound, e.AlreadyDecided, e.ServiceUnavailable),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/held/{heldId}/reject",
        handler=admin_page.admin_reject_held,
        example=ox.ADMIN_DECISION,
        summary="The queue's reject form: the held award never lands, as with POST "
        "/api/v1/admin/held/{heldId}/reject, then 303 back to /admin, which says so. The session, its CSRF "
        "token and this site's Origin are required (403 otherwise)",
        status=303,
        media=None,
        form=am.DecisionForm,
        path_params=RejectPath,
        errors=(e.ValidationFailed, e.Unauthorized, e.Forbidden, e.NotFound, e.AlreadyDecided, e.ServiceUnavailable),
        tag="operator page",
        browser=True,
    ),
    Endpoint(
        method="GET",
        path="/healthz",
        handler=views.healthz,
        summary="Alive",
        response=HealthData,
        example=x.HEALTHY,
        tag="operations",
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        handler=views.readyz,
        example=x.READY,
        summary="Ready: storage is reachable",
        response=HealthData,
        errors=(e.ServiceUnavailable,),
        tag="operations",
    ),
    Endpoint(
        method="GET",
        path="/api/openapi.json",
        handler=views.openapi,
        summary="This OpenAPI document",
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/api/docs",
        handler=views.docs,
        example=x.DOCS,
        summary='This document in Swagger UI, with examples and "Try it out" against this server',
        media="text/html",
        tag="documentation",
    ),
    Endpoint(
        method="GET",
        path="/favicon.ico",
        handler=views.favicon,
        summary="The site's icon, which browsers ask for by themselves",
        media="image/vnd.microsoft.icon",
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/static/{filename}",
        handler=views.static_file,
        summary="Static assets of the web pages (JS, CSS)",
        media="*/*",
        path_params=StaticPath,
        errors=(e.NotFound,),
        tag="web",
    ),
    Endpoint(
        method="GET",
        path="/static/swagger-ui/{filename}",
        handler=views.swagger_ui_file,
        summary="Swagger UI's files, for /api/docs (from the swagger-ui-py package, never a CDN)",
        media="*/*",
        path_params=SwaggerUiPath,
        errors=(e.NotFound,),
        tag="documentation",
    ),
)


UNMATCHED = "unmatched"  # the route label of every path no route serves (404, 405)


def setup_routes(
    app: web.Application, wrap: Callable[[Handler, str], Handler], endpoints: tuple[Endpoint, ...] = ENDPOINTS
) -> None:
    """Register every endpoint, each handler inside `wrap` (the request edge, told the route's
    template), and a last route that answers every other path and method with the contract's 404 or 405."""
    for endpoint in endpoints:
        handler = wrap(endpoint.handler, endpoint.path)
        if endpoint.method == "GET":
            app.router.add_get(endpoint.path, handler, expect_handler=expect_continue)  # HEAD too
        else:
            app.router.add_route(endpoint.method, endpoint.path, handler, expect_handler=expect_continue)
    # Every other path, newlines (%0A) too.
    app.router.add_route("*", r"/{unmatched:[\s\S]*}", wrap(views.unmatched, UNMATCHED), expect_handler=expect_continue)

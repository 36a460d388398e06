"""The operators' API: boards made, changed and retired at run time, held awards decided, moderation."""

from __future__ import annotations

from ... import errors as e
from .. import moderation_data as md
from .. import operator_examples as ox
from .. import views
from ..board_data import BoardChange, BoardCreate, BoardDetail, BoardRetire, OperatorBoardPath, RetiredData
from ..held_data import ApprovePath, DecisionRequest, HeldAwardData, HeldListData, HeldQuery, RejectPath
from .endpoint import AUTH_ERRORS, Endpoint

# An operator's correction of one user's entry in one board period.
_ENTRY_ERRORS = (
    *AUTH_ERRORS,
    e.Forbidden,
    e.BoardNotFound,
    e.PeriodNotFound,
    e.UserNotFound,
    e.NotFound,
    e.ServiceUnavailable,
)

ENDPOINTS: tuple[Endpoint, ...] = (
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.BoardExists, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.ServiceUnavailable),
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
        request=BoardRetire,
        request_optional=True,
        path_params=OperatorBoardPath,
        auth="operator",
        errors=(*AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.BoardInUse, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.NotFound, e.AlreadyDecided, e.Disqualified, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.NotFound, e.AlreadyDecided, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.BoardNotFound, e.PeriodNotFound, e.ServiceUnavailable),
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
        errors=(*AUTH_ERRORS, e.Forbidden, e.UserNotFound),
        tag="operators",
        cache="private",
    ),
)

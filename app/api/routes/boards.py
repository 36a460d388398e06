"""The routes that read boards: the boards, their tops, ranks, periods, a user's standings and notices."""

from __future__ import annotations

from ... import errors as e
from .. import examples as x
from .. import views
from ..board_data import (
    AroundData,
    AroundPath,
    AroundQuery,
    BoardDetail,
    BoardPath,
    BoardsData,
    BoardTopData,
    BoardTopQuery,
    LookupData,
    LookupRequest,
    PeriodsData,
    RanksData,
    RanksQuery,
    UserBoardsData,
)
from ..fields import UserPath
from ..notice_data import NotificationsData, NotificationsQuery
from .endpoint import AUTH_ERRORS, Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
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
        errors=(*AUTH_ERRORS, e.UserNotFound),
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
        errors=AUTH_ERRORS,
        tag="boards",
        cache="private",
    ),
)

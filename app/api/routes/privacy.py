"""The routes of a user's personal data: their export, and the erasure of themselves or, by an operator, of another."""

from __future__ import annotations

import dataclasses

from ... import errors as e
from .. import examples as x
from .. import personal_data as pd
from .. import views
from ..fields import UserPath
from .endpoint import AUTH_ERRORS, Endpoint

_ERASE_USER = Endpoint(
    method="DELETE",
    path="/api/v1/users/{userId}",
    handler=views.erase_user,
    example=x.ERASED,
    summary="Erase another user, as DELETE /users/me does (`me` always means the caller: erase a user "
    "whose id is `me` with DELETE /admin/users/{userId})",
    response=pd.ErasedData,
    path_params=UserPath,
    auth="operator",
    errors=(*AUTH_ERRORS, e.Forbidden, e.UserNotFound, e.ServiceUnavailable),
    tag="operators",
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/api/v1/users/me/export",
        handler=views.export,
        example=x.EXPORT,
        summary="Everything kept about the caller, as one document: the user, their entries on every board and "
        "period, awards, score changes, action tokens and notices",
        response=pd.ExportData,
        auth="user",
        errors=(*AUTH_ERRORS, e.UserNotFound),
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
        errors=(*AUTH_ERRORS, e.UserNotFound, e.ServiceUnavailable),
        tag="privacy",
    ),
    _ERASE_USER,
    # The same where `userId` is always a user's id: a user whose id is `me` can be erased too.
    dataclasses.replace(
        _ERASE_USER,
        path="/api/v1/admin/users/{userId}",
        handler=views.erase_by_operator,
        summary="Erase a user, as DELETE /users/{userId} does, where `userId` is always the id of a user "
        "(`me` too: the user whose id is `me`, not the caller)",
    ),
)

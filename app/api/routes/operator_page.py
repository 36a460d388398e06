"""The operator page's routes, for a person in a browser: its pages, sign-in and forms."""

from __future__ import annotations

from ... import errors as e
from .. import admin_models as am
from .. import admin_page
from .. import operator_examples as ox
from ..held_data import ApprovePath, RejectPath
from .endpoint import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
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
)

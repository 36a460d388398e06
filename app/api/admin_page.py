"""The operator page at /admin: rendered on the server, no script, every value escaped, under the
same Content-Security-Policy as the live page. Each handler parses its input first, then checks
the session (and a form's Origin and CSRF token), calls the services and renders. A page is made of
sections, each a partial template and one service call (`HOME_SECTIONS`, `USER_SECTIONS`): adding
one is a function and a template. A refusal is a page naming the contract's code, for a person to
read; a form that did something redirects back (303) to the page, which says what in one line."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import aiohttp_jinja2
from aiohttp import hdrs, web

from ..errors import ApiError, Unauthorized
from .admin_models import (
    AdminHomeQuery,
    AdminUserQuery,
    DecisionForm,
    Result,
    SessionForm,
    SignInForm,
    SignOutForm,
)
from .admin_session import PATH, Session, SignInNeeded
from .envelope import carrying
from .forms import read_form
from .held_data import ApprovePath, HeldQuery, RejectPath
from .keys import ADMIN_SESSIONS, AUDIT_HEAD, BOARD_ADMIN, CONFIG, HELD, MODERATION, PERSONAL_DATA
from .moderation_data import HistoryQuery
from .views import path_of, query_of

Q = TypeVar("Q")
F = TypeVar("F", bound=SessionForm)


class Part(NamedTuple):
    """One section of a page: its partial template and what it shows."""

    template: str
    data: object


# A section: what one service gives for a page's query, as a partial shows it.
Section = Callable[[web.Request, Session, Q], Awaitable[Part]]

RESULTS: dict[Result, str] = {
    "approved": "Held award {id} approved: it landed on its boards.",
    "rejected": "Held award {id} rejected: it never lands.",
    "signed-out": "Signed out.",
}
NO_STORE = "no-store"  # operators' views of users and decisions: kept by no cache


async def boards_section(request: web.Request, session: Session, query: AdminHomeQuery) -> Part:
    """Every board with its settings, retired ones too."""
    return Part("admin/boards.html", await request.app[BOARD_ADMIN].listing(session.principal))


async def held_section(request: web.Request, session: Session, query: AdminHomeQuery) -> Part:
    """One page of the held awards of the status asked for, pending ones with their decision forms."""
    listing = await request.app[HELD].list(session.principal, HeldQuery(status=query.held, after=query.after))
    return Part("admin/held.html", listing)


async def user_section(request: web.Request, session: Session, query: AdminUserQuery) -> Part:
    """Everything kept about the user: entries, awards, score changes, held awards."""
    return Part("admin/user_data.html", await request.app[PERSONAL_DATA].inspect(session.principal, query.id))


async def audit_section(request: web.Request, session: Session, query: AdminHomeQuery) -> Part:
    """The audit chain's head, as `run.py audit anchor` prints it, to copy somewhere safe."""
    return Part("admin/audit.html", await request.app[AUDIT_HEAD].head(session.principal))


HOME_SECTIONS: tuple[Section[AdminHomeQuery], ...] = (boards_section, held_section, audit_section)


async def moderation_section(request: web.Request, session: Session, query: AdminUserQuery) -> Part:
    """Whether the user is disqualified, and the moderation acts on them, newest first."""
    return Part(
        "admin/moderation.html", await request.app[MODERATION].history(session.principal, query.id, HistoryQuery())
    )


USER_SECTIONS: tuple[Section[AdminUserQuery], ...] = (user_section, moderation_section)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: Handler) -> Handler:
    """A handler of the operator page: a refusal becomes a page naming its code (the sign-in form
    when the session is missing or no longer holds), and nothing it answers is cached."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except SignInNeeded as needed:
            response = sign_in_page(request, needed.error)
        except ApiError as refused:
            response = carrying(refused, render(request, "admin/error.html", {"error": refused}, status=refused.status))
        response.headers[hdrs.CACHE_CONTROL] = NO_STORE
        return response

    return answer


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """A page of the operator page's templates."""
    return aiohttp_jinja2.render_template(
        template, request, {"title": request.app[CONFIG].server.title, **context}, status=status
    )


def sign_in_page(request: web.Request, error: ApiError | None = None, *, notice: str | None = None) -> web.Response:
    """The sign-in form, saying why it is shown; a session cookie that no longer holds is cleared."""
    response = render(
        request, "admin/sign_in.html", {"error": error, "notice": notice}, status=error.status if error else 200
    )
    if error is not None:
        carrying(error, response)
        request.app[ADMIN_SESSIONS].forget(response, request)
    return response


async def _parts(request: web.Request, session: Session, sections: Sequence[Section[Q]], query: Q) -> list[Part]:
    return [await section(request, session, query) for section in sections]


def _back(location: str) -> web.Response:
    return web.Response(status=303, headers={hdrs.LOCATION: location})


@page
async def admin_home(request: web.Request) -> web.StreamResponse:
    query = query_of(request, AdminHomeQuery)
    if query.done == "signed-out":
        return sign_in_page(request, notice=RESULTS["signed-out"])
    session = await request.app[ADMIN_SESSIONS].current(request)
    done = None
    # The banner of a decision made: shown while the award stands so decided, so that a link alone
    # (?done=rejected&id=59) cannot make the page report a decision nobody made.
    held_id = query.id if isinstance(query.id, int) else None
    if held_id is not None and query.done in ("approved", "rejected"):
        done = RESULTS[query.done].format(id=held_id)
        if await request.app[HELD].status(session.principal, held_id) != query.done:
            done = None
    parts = await _parts(request, session, HOME_SECTIONS, query)
    return render(request, "admin/home.html", {"session": session, "query": query, "parts": parts, "done": done})


@page
async def admin_user(request: web.Request) -> web.StreamResponse:
    query = query_of(request, AdminUserQuery)
    session = await request.app[ADMIN_SESSIONS].current(request)
    parts = await _parts(request, session, USER_SECTIONS, query)
    return render(request, "admin/user.html", {"session": session, "query": query, "parts": parts, "done": None})


@page
async def admin_sign_in(request: web.Request) -> web.StreamResponse:
    form = await read_form(request, SignInForm)
    sessions = request.app[ADMIN_SESSIONS]
    sessions.check_origin(request)
    try:
        principal = await sessions.sign_in(form.token)
    except ApiError as refused:
        raise SignInNeeded(refused) from None
    response = _back(PATH)
    sessions.keep(response, request, form.token, principal)
    return response


@page
async def admin_sign_out(request: web.Request) -> web.StreamResponse:
    await _form_session(request, SignOutForm)
    response = _back(f"{PATH}?done=signed-out")
    request.app[ADMIN_SESSIONS].forget(response, request)
    return response


@page
async def admin_approve_held(request: web.Request) -> web.StreamResponse:
    return await _decide(request, ApprovePath, "approved")


@page
async def admin_reject_held(request: web.Request) -> web.StreamResponse:
    return await _decide(request, RejectPath, "rejected")


async def _decide(request: web.Request, path: type[ApprovePath | RejectPath], done: Result) -> web.StreamResponse:
    """A decision form of the queue: checked, decided once, then back to the queue saying so."""
    session, form = await _form_session(request, DecisionForm)
    held_id = path_of(request, path).held_id
    held = request.app[HELD]
    decide = held.approve if done == "approved" else held.reject
    await decide(session.principal, held_id, form.reason)
    return _back(f"{PATH}?done={done}&id={held_id}")


async def _form_session(request: web.Request, model: type[F]) -> tuple[Session, F]:
    """The session of a form that changes something, and the form: who sends it first (the session,
    the page's Origin), as on the API, then its fields and CSRF token."""
    sessions = request.app[ADMIN_SESSIONS]
    try:
        session = await sessions.current(request)
    except SignInNeeded as needed:
        # A form without a session (signed out meanwhile, or sent by another site): refused.
        raise SignInNeeded(needed.error or Unauthorized("Sign in to the operator page first", error=None)) from None
    sessions.check_origin(request)
    form = await read_form(request, model)
    sessions.check_csrf(session, form.csrf)
    return session, form

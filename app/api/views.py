"""HTTP handlers: parse and validate, call one service method, render the envelope."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import NoReturn, TypeVar

import aiohttp_jinja2
import msgspec
from aiohttp import hdrs, web

from ..auth import Principal
from ..boards.trusted import Service
from ..decoding import convert_strings, decode_json, decoder_for
from ..errors import NotFound, ServiceUnavailable, Unauthorized, ValidationFailed
from ..settings import ACTIONS_ATTEST, SCORES_WRITE, Scope
from ..top_cache import TopAnswer
from .award_data import InitializeRequest, TopQuery, UpdateRequest
from .board_data import (
    AroundPath,
    AroundQuery,
    BoardChange,
    BoardCreate,
    BoardPath,
    BoardRetire,
    BoardTopQuery,
    LookupRequest,
    OperatorBoardPath,
    RanksQuery,
)
from .envelope import JSON, PRIVATE_CACHE_CONTROL, matches, not_modified, ok, ok_cacheable
from .fields import UserPath
from .forms import read_body
from .held_data import ApprovePath, DecisionRequest, HeldData, HeldQuery, RejectPath
from .keys import (
    ATTESTATIONS,
    BOARD_ADMIN,
    BOARD_READS,
    CONFIG,
    HELD,
    INITIALIZE_LIMITER,
    MODERATION,
    OPENAPI,
    OVERTAKES,
    PERSONAL_DATA,
    READ_CACHE_CONTROL,
    SCOREBOARD,
    SERVICE_KEYS,
    STORE,
    TRUSTED_WRITES,
    UPDATE_LIMITER,
    USER_AUTH,
)
from .moderation_data import (
    AdjustPath,
    AdjustRequest,
    EntryPath,
    HistoryQuery,
    ModeratedUserPath,
    ModerationRequest,
    WipePath,
)
from .notice_data import NotificationsQuery
from .page import page_context
from .site_data import HealthData
from .trusted_data import ActionPath, AttestRequest, ScoreWriteHeaders, ScoreWriteRequest

T = TypeVar("T")
log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# Swagger UI's distribution, as the swagger-ui-py package installs it (its own code is not used).
SWAGGER_UI_DIR = Path(str(importlib.resources.files("swagger_ui").joinpath("static")))
SWAGGER_UI_URL = "/static/swagger-ui"


def _files(folder: Path) -> dict[str, Path]:
    """The files of a folder by name, listed at start: nothing outside it can be reached."""
    return {p.name: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


STATIC_FILES = _files(STATIC_DIR)
# Only what /api/docs loads (the folder also holds Swagger Editor and pages with inline scripts).
SWAGGER_UI_FILES = {name: SWAGGER_UI_DIR / name for name in ("swagger-ui.css", "swagger-ui-bundle.js")}


async def parse_body(request: web.Request, model: type[T]) -> T:
    """Decode and validate a JSON body; VALIDATION_ERROR naming the field otherwise."""
    return decode_json(await read_body(request), decoder_for(model))


def authorization(request: web.Request) -> str | None:
    """The request's Authorization header; UNAUTHORIZED when it is given twice (whose request it
    is would depend on which one a proxy or this server read)."""
    values = request.headers.getall(hdrs.AUTHORIZATION, ())
    if len(values) > 1:
        raise Unauthorized("Authorization is given more than once", error="invalid_request")
    return values[0] if values else None


async def principal(request: web.Request) -> Principal:
    """The bearer of the request's JWT (with the keys held, unless it names a key not fetched yet)."""
    return await request.app[USER_AUTH].from_header(authorization(request))


async def operator(request: web.Request) -> Principal:
    """The bearer, who must be an operator: 403 FORBIDDEN before anything of the request is read."""
    user = await principal(request)
    user.require_role(request.app[CONFIG].auth.admin_role)
    return user


def service(request: web.Request, scope: Scope) -> Service:
    """The trusted server of the request's key, which must hold `scope` (and, on a board route, the
    board as named): 403 FORBIDDEN before anything of the request is read."""
    found = request.app[SERVICE_KEYS].from_header(authorization(request))
    found.check(scope, request.match_info.get("board"))
    return found


_DEFAULT_TOP = TopQuery()
PRIVATE = {hdrs.CACHE_CONTROL: PRIVATE_CACHE_CONTROL}


def query_of(request: web.Request, model: type[T]) -> T:
    """The query string validated into `model`; VALIDATION_ERROR naming the parameter otherwise."""
    query = request.query
    fields = dict(query)
    if len(fields) != len(query):  # one value per parameter: which of two a proxy or cache saw is unknown
        twice = next(name for name in fields if len(query.getall(name)) > 1)
        raise ValidationFailed(f"{twice} is given more than once")
    return convert_strings(fields, model)


def path_of(request: web.Request, model: type[T]) -> T:
    """The path parameters validated into `model`."""
    return convert_strings(dict(request.match_info), model)


def headers_of(request: web.Request, model: type[T]) -> T:
    """The headers `model` declares (by their names, in any case) validated into it; VALIDATION_ERROR
    naming the header otherwise."""
    found = {name: request.headers.getall(name) for name in _names(model) if name in request.headers}
    if twice := [name for name, values in found.items() if len(values) > 1]:
        raise ValidationFailed(f"{twice[0]} is given more than once")
    if missing := [name for name in _names(model, required=True) if name not in found]:
        # msgspec would say "Object missing required field", which a header is not.
        raise ValidationFailed(f"The {missing[0]} header is required", details=f"Missing header `{missing[0]}`")
    return convert_strings({name: values[0] for name, values in found.items()}, model)


def _names(model: type, *, required: bool = False) -> list[str]:
    return [field.encode_name for field in msgspec.structs.fields(model) if field.required or not required]


async def top(request: web.Request) -> web.Response:
    # Most reads ask for the default: no query to parse, and the same answer until the top moves.
    query = query_of(request, TopQuery) if request.query_string else _DEFAULT_TOP
    return cacheable(request, await request.app[SCOREBOARD].top(query.limit))


def cacheable(request: web.Request, answer: TopAnswer) -> web.Response:
    """A public read's answer with its ETag, or 304 when the client holds it already."""
    cache_control = request.app[READ_CACHE_CONTROL]
    # A CDN or browser revalidating its copy gets 304 while the answer is unchanged. It sends the
    # tag as it got it, mostly: that compare first, aiohttp's parse (~10 us) for the other forms.
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None and (if_none_match == answer.etag or matches(request.if_none_match, answer.etag)):
        return not_modified(answer.etag, cache_control)
    return ok_cacheable(answer.body, answer.etag, cache_control)


async def actions(request: web.Request) -> web.Response:
    return ok(request.app[SCOREBOARD].action_catalog())


async def initialize(request: web.Request) -> web.Response:
    user = await principal(request)
    await request.app[INITIALIZE_LIMITER].check(user.user_id)  # every call counts, valid or not
    body = await parse_body(request, InitializeRequest)
    return ok(await request.app[SCOREBOARD].initialize(user, body))


async def update(request: web.Request) -> web.Response:
    user = await principal(request)
    await request.app[UPDATE_LIMITER].check(user.user_id)  # every call counts, valid or not
    body = await parse_body(request, UpdateRequest)
    answer = await request.app[SCOREBOARD].complete(user, body)
    return ok(answer, status=202 if isinstance(answer, HeldData) else 200)


async def user_score(request: web.Request) -> web.Response:
    await principal(request)
    path = path_of(request, UserPath)
    response = ok(await request.app[SCOREBOARD].user_score(path.user_id))
    response.headers.update(PRIVATE)
    return response


async def boards(request: web.Request) -> web.Response:
    return ok(request.app[BOARD_READS].boards())


async def board(request: web.Request) -> web.Response:
    path = path_of(request, BoardPath)
    return ok(await request.app[BOARD_READS].board(path.board))


async def board_top(request: web.Request) -> web.Response:
    path, query = path_of(request, BoardPath), query_of(request, BoardTopQuery)
    return cacheable(request, await request.app[BOARD_READS].top(path.board, query.period, query.limit))


async def board_ranks(request: web.Request) -> web.Response:
    path, query = path_of(request, BoardPath), query_of(request, RanksQuery)
    return ok(await request.app[BOARD_READS].ranks(path.board, query.from_, query.limit, query.period))


async def board_around(request: web.Request) -> web.Response:
    path, query = path_of(request, AroundPath), query_of(request, AroundQuery)
    return ok(await request.app[BOARD_READS].around(path.board, path.user_id, query.radius, query.period))


async def board_lookup(request: web.Request) -> web.Response:
    path = path_of(request, BoardPath)
    body = await parse_body(request, LookupRequest)
    return ok(await request.app[BOARD_READS].lookup(path.board, body.user_ids, body.period))


async def board_periods(request: web.Request) -> web.Response:
    path = path_of(request, BoardPath)
    return ok(await request.app[BOARD_READS].periods(path.board))


async def user_boards(request: web.Request) -> web.Response:
    await principal(request)
    path = path_of(request, UserPath)
    response = ok(await request.app[BOARD_READS].user_boards(path.user_id))
    response.headers.update(PRIVATE)
    return response


async def notifications(request: web.Request) -> web.Response:
    user = await principal(request)
    query = query_of(request, NotificationsQuery)
    response = ok(await request.app[OVERTAKES].notifications(user.user_id, query.after))
    response.headers.update(PRIVATE)
    return response


async def export(request: web.Request) -> web.Response:
    user = await principal(request)
    response = ok(await request.app[PERSONAL_DATA].export(user.user_id))
    response.headers.update(PRIVATE)
    return response


async def erase_self(request: web.Request) -> web.Response:
    user = await principal(request)
    return ok(await request.app[PERSONAL_DATA].erase_self(user))


async def erase_user(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, UserPath)
    return ok(await request.app[PERSONAL_DATA].erase_user(user, path.user_id))


async def erase_by_operator(request: web.Request) -> web.Response:
    # As erase_user, under /admin/: there `me` is the user of that id, never the caller.
    return await erase_user(request)


async def board_scores(request: web.Request) -> web.Response:
    writer = service(request, SCORES_WRITE)
    path = path_of(request, BoardPath)
    headers = headers_of(request, ScoreWriteHeaders)
    body = await parse_body(request, ScoreWriteRequest)
    return ok(await request.app[TRUSTED_WRITES].write(writer, path.board, headers.idempotency_key, body))


async def attest(request: web.Request) -> web.Response:
    attester = service(request, ACTIONS_ATTEST)
    path = path_of(request, ActionPath)
    body = await parse_body(request, AttestRequest)
    return ok(await request.app[ATTESTATIONS].attest(attester, path.action_id, body))


async def create_board(request: web.Request) -> web.Response:
    user = await operator(request)
    body = await parse_body(request, BoardCreate)
    return ok(await request.app[BOARD_ADMIN].create(user, body), status=201)


async def change_board(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, OperatorBoardPath)
    body = await parse_body(request, BoardChange)
    return ok(await request.app[BOARD_ADMIN].change(user, path.board, body))


async def retire_board(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, OperatorBoardPath)
    body = await parse_body(request, BoardRetire) if request.body_exists else BoardRetire()
    return ok(await request.app[BOARD_ADMIN].retire(user, path.board, body))


async def held_awards(request: web.Request) -> web.Response:
    user = await operator(request)
    query = query_of(request, HeldQuery)
    return ok(await request.app[HELD].list(user, query))


async def approve_held(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, ApprovePath)
    body = await parse_body(request, DecisionRequest)
    return ok(await request.app[HELD].approve(user, path.held_id, body.reason))


async def reject_held(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, RejectPath)
    body = await parse_body(request, DecisionRequest)
    return ok(await request.app[HELD].reject(user, path.held_id, body.reason))


async def disqualify(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, ModeratedUserPath)
    body = await parse_body(request, ModerationRequest)
    return ok(await request.app[MODERATION].disqualify(user, path.user_id, body.reason))


async def reinstate(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, ModeratedUserPath)
    body = await parse_body(request, ModerationRequest)
    return ok(await request.app[MODERATION].reinstate(user, path.user_id, body.reason))


async def adjust(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, AdjustPath)
    body = await parse_body(request, AdjustRequest)
    return ok(await request.app[MODERATION].adjust(user, path.board, path.user_id, body))


async def remove_entry(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, EntryPath)
    body = await parse_body(request, ModerationRequest)
    return ok(await request.app[MODERATION].remove(user, path.board, path.period, path.user_id, body.reason))


async def wipe_period(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, WipePath)
    body = await parse_body(request, ModerationRequest)
    return ok(await request.app[MODERATION].wipe(user, path.board, path.period, body.reason))


async def user_history(request: web.Request) -> web.Response:
    user = await operator(request)
    path = path_of(request, ModeratedUserPath)
    query = query_of(request, HistoryQuery)
    response = ok(await request.app[MODERATION].history(user, path.user_id, query))
    response.headers.update(PRIVATE)
    return response


async def healthz(request: web.Request) -> web.Response:
    return ok(HealthData(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except Exception:
        log.warning("readiness check failed", exc_info=True)  # the cause for operators, not for callers
        raise ServiceUnavailable("Storage is not reachable") from None
    return ok(HealthData(status="ready"))


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type=JSON)


@aiohttp_jinja2.template("index.html")
async def page(request: web.Request) -> dict[str, object]:
    # Not validated into a model: a board the page cannot show still gets the page (the default
    # board, with a notice), never an error.
    title = request.app[CONFIG].server.title
    return await page_context(request.app[BOARD_READS], request.query.get("board"), title=title)


@aiohttp_jinja2.template("docs.html")
async def docs(request: web.Request) -> dict[str, str]:
    return {"openapi_url": "/api/openapi.json", "static_url": "/static", "swagger_url": SWAGGER_UI_URL}


async def unmatched(request: web.Request) -> NoReturn:
    """A path no route serves: 405 naming the allowed methods when another route has it, else 404."""
    own = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not own:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def asset(path: Path) -> web.FileResponse:
    """A file of the pages, cacheable for a few minutes."""
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=300"})


def file_of(files: dict[str, Path], request: web.Request) -> web.FileResponse:
    """The file the path names, among `files`; NOT_FOUND naming it otherwise."""
    path = files.get(request.match_info["filename"])
    if path is None:
        raise NotFound(details={"filename": request.match_info["filename"]})
    return asset(path)


async def static_file(request: web.Request) -> web.FileResponse:
    return file_of(STATIC_FILES, request)


async def swagger_ui_file(request: web.Request) -> web.FileResponse:
    return file_of(SWAGGER_UI_FILES, request)


async def favicon(request: web.Request) -> web.FileResponse:
    # Browsers ask for /favicon.ico by themselves, whatever a page links.
    return asset(STATIC_FILES["favicon.ico"])

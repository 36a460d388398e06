"""The scoreboard service: issue action tokens, award them exactly once, read the board."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import msgspec

from .api.award_data import (
    ActionEntry,
    ActionsData,
    CountWindowData,
    InitializeData,
    InitializeRequest,
    TopData,
    UpdateData,
    UpdateRequest,
    UserScoreData,
    VelocityData,
)
from .api.held_data import HeldData
from .auth import Principal
from .boards.board import Board, first_end, in_current_periods
from .boards.catalog import Catalog
from .clock import iso, now_ms
from .errors import (
    ActionMismatch,
    ApiError,
    Forbidden,
    InvalidAction,
    RateLimited,
    ServiceUnavailable,
    TokenAlreadyUsed,
    UserNotFound,
)
from .flights import Flight
from .held import hold_rules
from .limits import Limiter
from .logs import log_info, request_id
from .nonces import NonceGate
from .nonces.open import OpenGate
from .placing import Placer, best_effort, landed
from .ranking import TOP_SIZE, Ranking, percentile
from .records import Award, AwardClaim, Backoff, BoardPeriod, Move, TokenGrant
from .settings import ActionSettings, CountWindow
from .storage import Store
from .tokens import ActionClaims, ActionTokens, token_hash
from .top_cache import TopAnswer, TopCache
from .tracing import ACTION_TYPE, Spans

log = logging.getLogger(__name__)
BOARD_UNAVAILABLE = "board_unavailable"  # why an award is held: committed, the board catches up later


class Activity(Protocol):
    def saw(self, user_id: str) -> None:
        """A user started or completed an action (counted among the active users)."""


class AwardTally:
    """What the service did, counted in place for the metrics: tokens issued and awards committed
    by action type, awards refused by error code, awards held off the board by action type and
    reason, awards that brought their user into the top 10 (the top's turnover), and tokens refused
    to a user who already held `limits.tokens_per_user` unused ones."""

    def __init__(self) -> None:
        self.issued: Counter[str] = Counter()
        self.awarded: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.held: Counter[tuple[str, str]] = Counter()
        self.top_entries = 0
        self.over_token_cap = 0


def _log_award(award: Award, started: float) -> None:
    log_info(
        log,
        "Score updated",
        {
            "correlationId": request_id.get(),
            "userId": award.user_id,
            "previousScore": award.previous_score,
            "newScore": award.new_score,
            "actionType": award.action_type,
            "actionId": award.action_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


def _window(window: CountWindow | None) -> CountWindowData | None:
    return None if window is None else CountWindowData(count=window.count, window_s=window.window_s)


def _own_user(principal: Principal, user_id: str | None) -> None:
    if user_id is not None and user_id != principal.user_id:
        raise Forbidden()


class Scoreboard:
    """Everything the REST API does, independent of HTTP."""

    def __init__(
        self,
        *,
        store: Store,
        ranking: Ranking,
        tokens: ActionTokens,
        actions: dict[str, ActionSettings],
        catalog: Catalog,
        placer: Placer,
        gate: NonceGate | None = None,
        tokens_per_user: int | None = None,
        activity: Activity | None = None,
        spans: Spans | None = None,
        action_limiters: dict[str, Limiter] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.ranking = ranking
        self.tokens = tokens
        self.actions = actions
        self.catalog = catalog
        self.placer = placer
        self.gate = gate or OpenGate()
        self.tokens_per_user = tokens_per_user  # unexpired unused tokens a user may hold; None: no cap
        self.tops: TopCache = placer.tops
        self.clock = clock  # ms since the epoch: which period a write counts in
        self.tally = AwardTally()
        self.activity = activity  # None: nobody counts the active users
        self.span = spans or Spans(None)  # the award's steps as trace spans, when tracing is on
        self.action_limiters = action_limiters or {}  # updates per user of the action types that have a rate_limit
        self.backoff = backoff  # repeat offenders' back-off; None: off
        self.rules = {name: hold_rules(action) for name, action in actions.items()}

    async def initialize(self, principal: Principal, request: InitializeRequest) -> InitializeData:
        """Issue a token worth the catalog's score for this action, recorded before it is returned."""
        self._saw(principal)
        _own_user(principal, request.user_id)
        action = self.actions.get(request.action_type)
        if action is None:
            raise InvalidAction(details={"actionType": request.action_type})
        self._boards_of(action)
        token, claims = self.tokens.issue(
            user_id=principal.user_id,
            action_type=request.action_type,
            action_id=request.action_id,
            score_increment=action.score,
        )
        try:
            await self.store.grant(self._grant(principal, token, claims), max_unused=self.tokens_per_user)
        except RateLimited:
            self.tally.over_token_cap += 1
            raise
        self.tally.issued[claims.action_type] += 1
        await best_effort("display name refresh", self._rename(principal))
        return InitializeData(action_token=token, expires_at=iso(claims.exp * 1000), expected_score=action.score)

    def _grant(self, principal: Principal, token: str, claims: ActionClaims) -> TokenGrant:
        """The record of an issued token, kept so that it can be spent once."""
        return TokenGrant(
            nonce=claims.nonce,
            token_hash=token_hash(token),
            user_id=principal.user_id,
            username=principal.name,
            action_type=claims.action_type,
            action_id=claims.action_id,
            score_increment=claims.score_increment,
            issued_ms=self.clock(),
            expires_ms=claims.exp * 1000,
        )

    async def _rename(self, principal: Principal) -> None:
        if await self.ranking.rename(principal.user_id, principal.name):
            self.tops.changed()

    def action_catalog(self) -> ActionsData:
        """Every action a client may initialize: its score, minimum time, boards, whether it needs an
        attestation, the cheat rules that hold its awards and its rate limit, by type."""
        return ActionsData(
            actions=[
                ActionEntry(
                    type=name,
                    score=action.score,
                    min_seconds=action.min_seconds,
                    boards=list(action.boards or (self.catalog.default,)),
                    attest=action.attest,
                    hold_over_per_hour=action.hold_over_per_hour,
                    hold_over=_window(action.hold_over),
                    hold_within_s=action.hold_within_s,
                    max_score_per_hour=action.max_score_per_hour,
                    velocity=None
                    if action.velocity is None
                    else VelocityData(**msgspec.structs.asdict(action.velocity)),
                    rate_limit=_window(action.rate_limit),
                )
                for name, action in sorted(self.actions.items())
            ]
        )

    def _boards_of(self, action: ActionSettings) -> list[Board]:
        """The boards an action awards on, the default one first when it is among them; INVALID_ACTION
        when one is retired or takes no awards (not an incr board)."""
        ids = action.boards or (self.catalog.default,)
        boards = []
        for board_id in sorted(ids, key=lambda b: b != self.catalog.default):
            board = self.catalog.find(board_id)
            if board is None or board.settings.operator != "incr":
                raise InvalidAction(
                    "This action awards on a board that takes no awards now", details={"board": board_id}
                )
            boards.append(board)
        return boards

    async def complete(self, principal: Principal, request: UpdateRequest) -> UpdateData | HeldData:
        """Check everything that can refuse the award, then consume the token and award once on
        every board of the action, in one transaction; or hold it for an operator (a cheat rule)."""
        started = time.perf_counter()
        self._saw(principal)
        with self.span("award") as span:
            async with self.placer.in_flight.flight() as flight:
                try:
                    with self.span("award.verify"):
                        claims, action = self._check(principal, request)
                        boards = self._boards_of(action)
                    span.set_attribute(ACTION_TYPE, claims.action_type)
                    limiter = self.action_limiters.get(claims.action_type)
                    if limiter is not None:  # before the token is touched: it stays usable
                        await limiter.check(principal.user_id)
                    award, expires = await self._consume(principal, claims, action, boards, flight)
                except ApiError as exc:
                    self.tally.refused[exc.code] += 1
                    raise
                if award.held is not None:
                    return self._held(award)
                self.tally.awarded[award.action_type] += 1
                moves = await self.record(award, expires)
        _log_award(award, started)
        first = moves[0]
        top = await self.top_data(TOP_SIZE, first.change.where)
        return UpdateData(
            user_id=award.user_id,
            previous_score=award.previous_score,
            new_score=award.new_score,
            score_increment=award.score_increment,
            rank=first.rank,
            leaderboard=top.leaderboard,
            boards=landed(moves),
        )

    def _held(self, award: Award) -> HeldData:
        """The answer of an award a cheat rule held."""
        for rule in award.held_by:
            self.tally.held[award.action_type, rule] += 1
        log.warning("award %s of %s held (%s)", award.held, award.user_id, ", ".join(award.held_by))
        return HeldData(
            status="held",
            id=award.held or 0,
            user_id=award.user_id,
            action_type=award.action_type,
            action_id=award.action_id,
            score_increment=award.score_increment,
        )

    def _saw(self, principal: Principal) -> None:
        if self.activity is not None:
            self.activity.saw(principal.user_id)

    def _check(self, principal: Principal, request: UpdateRequest) -> tuple[ActionClaims, ActionSettings]:
        """Everything that can refuse an award before the token is touched."""
        _own_user(principal, request.user_id)
        claims = self.tokens.verify(request.action_token)
        _own_user(principal, claims.user_id)
        if request.action_id != claims.action_id:
            raise ActionMismatch()
        action = self.actions.get(claims.action_type)
        if action is None:
            raise InvalidAction("This action is no longer in the catalog")
        return claims, action

    async def _consume(
        self, principal: Principal, claims: ActionClaims, action: ActionSettings, boards: list[Board], flight: Flight
    ) -> tuple[Award, dict[BoardPeriod, int | None]]:
        """Spend the token and commit the award on every board in the period current as its
        transaction begins, past the nonce gate; the gate learns the outcome (and `flight` the
        periods it may land in). The award and when each of its periods expires."""
        with self.span("award.gate.claim"):
            attempt = await self.gate.claim(claims.nonce)  # refuses only a nonce whose award committed
        used_for = max(1, claims.exp - self.clock() // 1000)  # the gate needs it no longer than the token lives

        async def award_now(now: int) -> tuple[Award, dict[BoardPeriod, int | None]]:
            periods = [(board, board.current(now)) for board in boards]
            expires = {board.where(p): board.expire_ms(p) for board, p in periods}
            await flight.over(expires)
            award = await self.store.award(
                AwardClaim(
                    nonce=claims.nonce,
                    user_id=principal.user_id,
                    username=principal.name,
                    action_type=claims.action_type,
                    action_id=claims.action_id,
                    min_elapsed_ms=round(action.min_seconds * 1000),
                    now_ms=now,
                    boards=tuple(expires),
                    ends_ms=first_end(p for _, p in periods),
                    attest=action.attest,
                    rules=self.rules.get(claims.action_type),
                    backoff=self.backoff,
                )
            )
            return award, expires

        try:
            with self.span("award.transaction"):
                award, expires = await in_current_periods(self.clock, award_now)
        except TokenAlreadyUsed:
            # It committed before (the gate forgot it, or its process died before confirming).
            with self.span("award.gate.confirm"):
                await best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
            raise
        except BaseException:
            # Refused (NOT_ATTESTED, ACTION_TOO_FAST, ...) or failed: nothing committed, so the nonce
            # is freed at once for the token's next try.
            if attempt is not None:
                with self.span("award.gate.release"):
                    await best_effort("nonce release", self.gate.release(claims.nonce, attempt))
            raise
        with self.span("award.gate.confirm"):
            await best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
        return award, expires

    async def record(self, award: Award, expires: dict[BoardPeriod, int | None]) -> list[Move]:
        """Place a committed award on its boards' rank indexes and publish it to the live side."""
        try:
            moves = await self.placer.place(award.user_id, award.username, award.awarded_ms, award.changes, expires)
        except ServiceUnavailable:
            self.tally.held[award.action_type, BOARD_UNAVAILABLE] += 1
            raise
        first = moves[0]
        entered = first.rank <= TOP_SIZE and (first.previous_rank is None or first.previous_rank > TOP_SIZE)
        if entered and first.change.where.board == self.catalog.default:
            self.tally.top_entries += 1
        return moves

    def default_where(self) -> BoardPeriod:
        """The current period of the default board."""
        board = self.catalog.get(self.catalog.default)
        return board.where(board.current(self.clock()))

    async def top(self, limit: int, where: BoardPeriod | None = None) -> TopAnswer:
        """The top of a board period (the default board's current one), rendered once per change of
        what it shows, in the shape of GET /scoreboard/top."""
        where = where or self.default_where()
        version = self.tops.version(where)
        answer = self.tops.get((where, limit), version)
        if answer is None:
            answer = self.tops.answer(where, limit, version, await self.ranking.top(where, limit))
        return answer

    async def top_data(self, limit: int, where: BoardPeriod | None = None) -> TopData:
        """`top`'s data."""
        data = (await self.top(limit, where)).data
        assert isinstance(data, TopData)
        return data

    async def user_score(self, user_id: str) -> UserScoreData:
        """A user's score, rank and percentile on the default board; rank null when not on it."""
        position = await self.ranking.position(self.default_where(), user_id)
        if position is not None:
            return UserScoreData(
                user_id=user_id,
                username=position.standing.username,
                score=position.standing.score,
                rank=position.rank,
                percentile=percentile(position.rank, position.size),
            )
        record = await self.store.user(user_id)
        if record is None:
            raise UserNotFound(details={"userId": user_id})
        return UserScoreData(user_id=user_id, username=record.username, score=0, rank=None, percentile=None)

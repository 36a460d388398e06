"""The scoreboard service: issue action tokens, award them exactly once, read the board."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Protocol

from .api.models import InitializeData, InitializeRequest, UpdateData, UpdateRequest, UserScoreData
from .auth import Principal
from .clock import iso, now_ms
from .config import ActionSettings
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
from .fanout import Fanout
from .logs import log_info, request_id
from .nonces import NonceGate
from .nonces.open import OpenGate
from .ranking import TOP_SIZE, Ranking, percentile
from .records import Award, AwardClaim, AwardEvent, Standing, TokenGrant
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


async def _best_effort(what: str, step: Awaitable[object]) -> None:
    """Run a step that follows a commit and must not turn it into a failure."""
    try:
        await step
    except ServiceUnavailable:
        log.warning("%s skipped: a backing service is unavailable", what)


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
        fanout: Fanout,
        gate: NonceGate | None = None,
        tokens_per_user: int | None = None,
        tops: TopCache | None = None,
        activity: Activity | None = None,
        spans: Spans | None = None,
    ) -> None:
        self.store = store
        self.ranking = ranking
        self.tokens = tokens
        self.actions = actions
        self.fanout = fanout
        self.gate = gate or OpenGate()
        self.tokens_per_user = tokens_per_user  # unexpired unused tokens a user may hold; None: no cap
        self.tops = tops or TopCache()
        self.tally = AwardTally()
        self.activity = activity  # None: nobody counts the active users
        self.span = spans or Spans(None)  # the award's steps as trace spans, when tracing is on

    async def initialize(self, principal: Principal, request: InitializeRequest) -> InitializeData:
        """Issue a token worth the catalog's score for this action, recorded before it is returned."""
        self._saw(principal)
        _own_user(principal, request.user_id)
        action = self.actions.get(request.action_type)
        if action is None:
            raise InvalidAction(details={"actionType": request.action_type})
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
        await _best_effort("display name refresh", self._rename(principal))
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
            issued_ms=now_ms(),
            expires_ms=claims.exp * 1000,
        )

    async def _rename(self, principal: Principal) -> None:
        if await self.ranking.rename(principal.user_id, principal.name):
            self.tops.changed()

    async def complete(self, principal: Principal, request: UpdateRequest) -> UpdateData:
        """Check everything that can refuse the award, then consume the token and award once."""
        started = time.perf_counter()
        self._saw(principal)
        with self.span("award") as span:
            try:
                with self.span("award.verify"):
                    claims, action = self._check(principal, request)
                span.set_attribute(ACTION_TYPE, claims.action_type)
                award = await self._consume(principal, claims, action)
            except ApiError as exc:
                self.tally.refused[exc.code] += 1
                raise
            self.tally.awarded[award.action_type] += 1
            _, rank = await self.record(award)
        _log_award(award, started)
        return UpdateData(
            user_id=award.user_id,
            previous_score=award.previous_score,
            new_score=award.new_score,
            score_increment=award.score_increment,
            rank=rank,
            leaderboard=(await self.top(TOP_SIZE)).data.leaderboard,
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

    async def _consume(self, principal: Principal, claims: ActionClaims, action: ActionSettings) -> Award:
        """Spend the token and commit the award, past the nonce gate; the gate learns the outcome."""
        with self.span("award.gate.claim"):
            attempt = await self.gate.claim(claims.nonce)  # refuses only a nonce whose award committed
        used_for = max(1, claims.exp - int(time.time()))  # the gate needs it no longer than the token lives
        try:
            with self.span("award.transaction"):
                award = await self.store.award(
                    AwardClaim(
                        nonce=claims.nonce,
                        user_id=principal.user_id,
                        username=principal.name,
                        action_type=claims.action_type,
                        action_id=claims.action_id,
                        min_elapsed_ms=round(action.min_seconds * 1000),
                        now_ms=now_ms(),
                    )
                )
        except TokenAlreadyUsed:
            # It committed before (the gate forgot it, or its process died before confirming).
            with self.span("award.gate.confirm"):
                await _best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
            raise
        except BaseException:
            if attempt is not None:
                with self.span("award.gate.release"):
                    await _best_effort("nonce release", self.gate.release(claims.nonce, attempt))
            raise
        with self.span("award.gate.confirm"):
            await _best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
        return award

    async def record(self, award: Award) -> tuple[int | None, int]:
        """Apply a committed award to the ranking and publish it to the live side."""
        try:
            with self.span("award.ranking"):
                previous_rank, rank = await self.ranking.put(Standing.of(award))
        except ServiceUnavailable:
            self.tops.changed()
            self.tally.held[award.action_type, BOARD_UNAVAILABLE] += 1
            # Committed, so it counts; the board catches up from the database when Redis returns.
            raise ServiceUnavailable(
                "The award is recorded; the leaderboard is catching up", details={"awarded": True}
            ) from None
        self.tops.moved(previous_rank, rank)  # at once: this award's own answer shows it
        if rank <= TOP_SIZE and (previous_rank is None or previous_rank > TOP_SIZE):
            self.tally.top_entries += 1
        event = AwardEvent(award=award, previous_rank=previous_rank, rank=rank)
        with self.span("award.fanout"):
            await _best_effort("live update", self.fanout.publish(event))
        return previous_rank, rank

    async def top(self, limit: int) -> TopAnswer:
        """The top of the board, rendered once per change of what it shows."""
        version = self.tops.version()
        answer = self.tops.get(limit, version)
        if answer is None:
            answer = self.tops.answer(limit, version, await self.ranking.top(limit))
        return answer

    async def user_score(self, user_id: str) -> UserScoreData:
        """A user's score, rank and percentile; rank null until the first award."""
        position = await self.ranking.position(user_id)
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

"""The scoreboard service: issue action tokens, award them exactly once, read the board."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Hashable

from .auth import Principal
from .board import Board, percentile
from .clock import iso, now_ms
from .config import ActionSettings
from .errors import ActionMismatch, Forbidden, InvalidAction, ServiceUnavailable, TokenAlreadyUsed, UserNotFound
from .events import AwardEvent
from .fanout import Fanout
from .gate import NonceGate, OpenGate
from .leaderboard import WATCHED_PLACES, Standing, last_change
from .logs import log_info, request_id
from .models import (
    BoardEntry,
    InitializeData,
    InitializeRequest,
    TopData,
    UpdateData,
    UpdateRequest,
    UserScoreData,
)
from .storage import Award, AwardClaim, Store, TokenGrant
from .tokens import ActionTokens, token_hash

log = logging.getLogger(__name__)

FREEZE_AT_USERS = 100_000
MAX_ENTRIES = 4 * WATCHED_PLACES  # rendered top entries kept for reuse


async def _best_effort(what: str, step: Awaitable[None]) -> None:
    """Run a step that follows a commit and must not turn it into a failure."""
    try:
        await step
    except ServiceUnavailable:
        log.warning("%s skipped: a backing service is unavailable", what)


def _own_user(principal: Principal, user_id: str | None) -> None:
    if user_id is not None and user_id != principal.user_id:
        raise Forbidden()


class Scoreboard:
    """Everything the REST API does, independent of HTTP."""

    def __init__(
        self,
        *,
        store: Store,
        board: Board,
        tokens: ActionTokens,
        actions: dict[str, ActionSettings],
        fanout: Fanout,
        gate: NonceGate | None = None,
        tokens_per_user: int | None = None,
    ) -> None:
        self.store = store
        self.board = board
        self.tokens = tokens
        self.actions = actions
        self.fanout = fanout
        self.gate = gate or OpenGate()
        self.tokens_per_user = tokens_per_user  # unexpired unused tokens a user may hold; None: no cap
        # limit -> (board version, answer): most reads arrive between two changes of the board.
        self._tops: dict[int, tuple[Hashable, TopData]] = {}
        self._entries: dict[tuple[int, Standing], BoardEntry] = {}  # (rank, standing) -> its entry

    async def rebuild(self) -> None:
        """Load the rank index from the system of record."""
        started = time.perf_counter()
        records = await self.store.standings()
        await self.board.load(records)
        seconds = round(time.perf_counter() - started, 3)
        if len(records) >= FREEZE_AT_USERS:
            # A full collection walks every object: with a million standings in memory that is a
            # ~70 ms pause now and then. They hold no cycles, so the collector can skip them.
            gc.freeze()
        log.info("leaderboard rebuilt with %d users in %.3f s", len(records), seconds, extra={"seconds": seconds})

    async def initialize(self, principal: Principal, request: InitializeRequest) -> InitializeData:
        """Issue a token worth the catalog's score for this action, recorded before it is returned."""
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
        await self.store.grant(
            TokenGrant(
                nonce=claims.nonce,
                token_hash=token_hash(token),
                user_id=principal.user_id,
                username=principal.name,
                action_type=claims.action_type,
                action_id=claims.action_id,
                score_increment=claims.score_increment,
                issued_ms=now_ms(),
                expires_ms=claims.exp * 1000,
            ),
            max_unused=self.tokens_per_user,
        )
        await _best_effort("display name refresh", self.board.rename(principal.user_id, principal.name))
        return InitializeData(action_token=token, expires_at=iso(claims.exp * 1000), expected_score=action.score)

    async def complete(self, principal: Principal, request: UpdateRequest) -> UpdateData:
        """Check everything that can refuse the award, then consume the token and award once."""
        started = time.perf_counter()
        _own_user(principal, request.user_id)
        claims = self.tokens.verify(request.action_token)
        _own_user(principal, claims.user_id)
        if request.action_id != claims.action_id:
            raise ActionMismatch()
        action = self.actions.get(claims.action_type)
        if action is None:
            raise InvalidAction("This action is no longer in the catalog")
        attempt = await self.gate.claim(claims.nonce)  # refuses only a nonce whose award committed
        used_for = max(1, claims.exp - int(time.time()))  # the gate needs it no longer than the token lives
        try:
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
            await _best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
            raise
        except BaseException:
            if attempt is not None:
                await _best_effort("nonce release", self.gate.release(claims.nonce, attempt))
            raise
        await _best_effort("nonce confirmation", self.gate.confirm(claims.nonce, used_for))
        _, rank = await self.record(award)
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
        return UpdateData(
            user_id=award.user_id,
            previous_score=award.previous_score,
            new_score=award.new_score,
            score_increment=award.score_increment,
            rank=rank,
            leaderboard=(await self.top(10)).leaderboard,
        )

    async def record(self, award: Award) -> tuple[int | None, int]:
        """Apply a committed award to the rank index and publish it to the live side."""
        standing = Standing(
            user_id=award.user_id,
            username=award.username,
            score=award.new_score,
            seq=award.seq,
            updated_ms=award.awarded_ms,
        )
        try:
            previous_rank, rank = await self.board.put(standing)
        except ServiceUnavailable:
            # Committed, so it counts; the board catches up from the database when Redis returns.
            raise ServiceUnavailable(
                "The award is recorded; the leaderboard is catching up", details={"awarded": True}
            ) from None
        event = AwardEvent(award=award, previous_rank=previous_rank, rank=rank)
        await _best_effort("live update", self.fanout.publish(event))
        return previous_rank, rank

    async def top(self, limit: int) -> TopData:
        """The top of the board."""
        version = self.board.version()
        cached = self._tops.get(limit)
        if cached is not None and cached[0] == version:
            return cached[1]
        top = await self.board.top(limit)
        entries = [self._entry(place) for place in top]
        # When what is shown last changed: an award further down changes neither the answer nor this.
        data = TopData(leaderboard=entries, updated_at=iso(last_change(top) or now_ms()))
        if version is not None and top:  # an empty board's updatedAt is "now": not cached
            self._tops[limit] = (version, data)
        return data

    def _entry(self, place: tuple[int, Standing]) -> BoardEntry:
        # An award moves one or two entries of a top 10; the others are built once and reused.
        entry = self._entries.get(place)
        if entry is None:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            rank, s = place
            entry = self._entries[place] = BoardEntry(
                rank=rank, user_id=s.user_id, username=s.username, score=s.score, last_updated=iso(s.updated_ms)
            )
        return entry

    async def user_score(self, user_id: str) -> UserScoreData:
        """A user's score, rank and percentile; rank null until the first award."""
        position = await self.board.position(user_id)
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

"""Trusted servers: service keys (kept as SHA-256 hashes in the configuration) and their score
writes, applied by each board's operator exactly once per Idempotency-Key."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import msgspec

from ..api.trusted_data import ScoreWriteData, ScoreWriteRequest
from ..errors import Forbidden, Unauthorized, ValidationFailed
from ..placing import Placer, best_effort
from ..ranking import Ranking
from ..records import ScoreWrite, WriteOutcome
from ..settings import SCORES_WRITE, Scope, ServiceSettings
from ..storage import Store
from .board import in_current_periods
from .catalog import Catalog
from .periods import Period

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 1024
_canonical = msgspec.json.Encoder(order="sorted")
_answer = msgspec.json.Encoder()
_answer_of = msgspec.json.Decoder(ScoreWriteData)


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated trusted server."""

    name: str
    scopes: frozenset[str]
    boards: frozenset[str] | None  # None: every board

    def check(self, scope: Scope, board_id: str | None = None) -> None:
        """FORBIDDEN unless this service has the scope, and, for a write to a board, that board."""
        if scope not in self.scopes:
            raise Forbidden(f"This service key lacks the scope {scope}", details={"scope": scope})
        if board_id is not None and self.boards is not None and board_id not in self.boards:
            raise Forbidden("This service key may not write to this board", details={"board": board_id})


class ServiceKeys:
    """Finds the service a bearer key belongs to by the key's SHA-256; the keys themselves are
    never kept."""

    def __init__(self, services: dict[str, ServiceSettings]) -> None:
        self._by_hash = {
            s.key_sha256: Service(
                name=name, scopes=frozenset(s.scopes), boards=None if s.boards is None else frozenset(s.boards)
            )
            for name, s in services.items()
        }

    def from_header(self, header: str | None) -> Service:
        """The service of `Authorization: Bearer <service key>`; UNAUTHORIZED for anything else."""
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("A service key is required: Authorization: Bearer <key>", error=None)
        digest = hashlib.sha256(key.strip().encode("utf-8", "surrogatepass")).hexdigest()
        service = self._by_hash.get(digest)
        if service is None:
            raise Unauthorized("Unknown service key")
        return service


class TrustedWrites:
    """Applies trusted servers' score writes."""

    def __init__(self, catalog: Catalog, store: Store, ranking: Ranking, placer: Placer, clock: Callable[[], int]):
        self.catalog = catalog
        self.store = store
        self.ranking = ranking
        self.placer = placer
        self.clock = clock

    async def write(self, service: Service, board_id: str, key: str, request: ScoreWriteRequest) -> ScoreWriteData:
        """Apply the board's operator to the user's entry in the current period, once per key: a
        retry with the same body answers the first answer again."""
        service.check(SCORES_WRITE, board_id)
        board = self.catalog.get(board_id)
        metadata = None
        if request.metadata is not None:
            metadata = _canonical.encode(request.metadata).decode()
            if len(metadata.encode()) > MAX_METADATA_BYTES:
                raise ValidationFailed("metadata is at most 1 KiB of JSON", details={"field": "metadata"})
        request_hash = hashlib.sha256(board_id.encode() + b"\n" + _canonical.encode(request)).hexdigest()

        async def write_now(now: int) -> tuple[int, Period, WriteOutcome]:
            period = board.current(now)
            await flight.over((board.where(period),))
            outcome = await self.store.write_score(
                ScoreWrite(
                    service=service.name,
                    key=key,
                    request_hash=request_hash,
                    where=board.where(period),
                    operator=board.settings.operator,
                    user_id=request.user_id,
                    score=request.score,
                    subscore=request.subscore,
                    metadata=metadata,
                    now_ms=now,
                    ends_ms=period.ends_ms,
                )
            )
            return now, period, outcome

        async with self.placer.in_flight.flight() as flight:  # write_now stamps it
            now, period, outcome = await in_current_periods(self.clock, write_now)
            where = board.where(period)
            expires = {where: board.expire_ms(period)}
            moves = (
                []
                if outcome.replayed
                else await self.placer.place(outcome.user_id, outcome.username, now, [outcome.change], expires)
            )
        if outcome.replayed:  # it placed nothing: the period's end need not wait for its read
            return await self._replay(outcome)
        rank = moves[0].rank if moves else await self._rank(outcome)
        answer = self._data(outcome, rank)
        await best_effort(
            "idempotent answer", self.store.keep_answer(service.name, key, _answer.encode(answer).decode())
        )
        return answer

    async def _rank(self, outcome: WriteOutcome) -> int:
        position = await self.ranking.position(outcome.change.where, outcome.user_id)
        return position.rank if position is not None else 1  # unreachable once placed; never 0

    async def _replay(self, outcome: WriteOutcome) -> ScoreWriteData:
        """The first answer of a key, or (its process stopped before keeping it) the same outcome
        with the rank of now."""
        if outcome.answer is not None:
            return _answer_of.decode(outcome.answer)
        return self._data(outcome, await self._rank(outcome))

    @staticmethod
    def _data(outcome: WriteOutcome, rank: int) -> ScoreWriteData:
        change = outcome.change
        return ScoreWriteData(
            board=change.where.board,
            period=change.where.period,
            user_id=outcome.user_id,
            previous_score=change.previous_score,
            new_score=change.new_score,
            rank=rank,
            improved=change.changed,
        )

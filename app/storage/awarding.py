"""The statements an award writes: spending its token, recording its history row, placing it on
each board and closing it. SQLite runs them one by one; PostgreSQL, whose statements may write
through common table expressions, runs the same writes as two statements whatever the boards, and
most awards as one call, for all of a loop turn's, of a function holding both (`CREATE_AWARD_FUNCTION`)."""

from __future__ import annotations

import re
from typing import Any

from ..records import AwardClaim

CONSUME = (
    "UPDATE action_tokens SET used_at = $1 WHERE nonce = $2 AND user_id = $3 AND action_type = $4 "
    "AND action_id = $5 AND used_at IS NULL AND issued_at <= $6 AND expires_at > $1 "
    "RETURNING score_increment, token_hash"
)
# The insert locks the user (where rows are locked) before any entry is read: one award or write
# of a user at a time. A conflict on the token or on (user_id, action_id) inserts nothing rather
# than failing. Its scores are the first board's, set once that board's entry is written. A
# disqualified user inserts nothing either: the flag is read on the row the insert locks, the row
# a disqualification locks to set it, so an award in flight is either before it or refused.
RECORD_AWARD = (
    "INSERT INTO score_history (user_id, action_type, action_id, score_change, previous_score, "
    "new_score, token_nonce, action_token_hash, created_at) "
    "SELECT id, $1, $2, $3, 0, 0, $4, $5, $6 FROM users WHERE id = $7 AND disqualified_at IS NULL{row_lock} "
    "ON CONFLICT DO NOTHING RETURNING id"
)
# CONSUME then RECORD_AWARD (CONSUME's parameters) as one statement: the token's increment and
# hash, and the history row's id or NULL when RECORD_AWARD would have inserted nothing; no row when
# CONSUME would have matched nothing.
SPEND = (
    "WITH spent AS ("  # noqa: S608 - built from this module's constants, no input
    + CONSUME
    + "), recorded AS (INSERT INTO score_history (user_id, action_type, action_id, score_change, "
    "previous_score, new_score, token_nonce, action_token_hash, created_at) "
    "SELECT u.id, $4, $5, spent.score_increment, 0, 0, $2, spent.token_hash, $1 FROM spent, users u "
    "WHERE u.id = $3 AND u.disqualified_at IS NULL FOR UPDATE OF u ON CONFLICT DO NOTHING RETURNING id) "
    "SELECT spent.score_increment, spent.token_hash, recorded.id FROM spent LEFT JOIN recorded ON true"
)
RELEASE = "UPDATE action_tokens SET used_at = NULL WHERE nonce = $1"  # CONSUME undone: the token usable again
SET_AWARD_SCORES = "UPDATE score_history SET previous_score = $1, new_score = $2 WHERE id = $3"
# An award's history rows and entries on its boards where statements cannot write through CTEs
# (SQLite): two statements whatever the boards, each answering every row it wrote, in no set order
# (each row names its board and period). The history rows read the entries they add to.
# `add_changes` parameters: the user, the award's id, its increment, the time, then each board
# and period; `add_entries`: the user, the time, then each board, period, new score and history id.
ADD_CHANGES = (
    "INSERT INTO board_history (board, period, user_id, award_id, value, previous_score, new_score, created_at) "
    "SELECT b.column1, b.column2, $1, $2, $3, e.score, COALESCE(e.score, 0) + $3, $4 FROM (VALUES :boards) AS b "
    "LEFT JOIN board_entries e ON e.board = b.column1 AND e.period = b.column2 AND e.user_id = $1 "
    "RETURNING id, board, period, previous_score, new_score"
)
ADD_ENTRIES = (
    "INSERT INTO board_entries (board, period, user_id, score, seq, updated_at) VALUES :entries "
    "ON CONFLICT (board, period, user_id) DO UPDATE SET score = excluded.score, seq = excluded.seq, "
    "updated_at = excluded.updated_at RETURNING board, period, subscore, metadata"
)


def add_changes(boards: int) -> str:
    """ADD_CHANGES for `boards` boards (at least one)."""
    rows = ", ".join(f"(${5 + 2 * i}, ${6 + 2 * i})" for i in range(boards))
    return ADD_CHANGES.replace(":boards", rows)


def add_entries(boards: int) -> str:
    """ADD_ENTRIES for `boards` boards (at least one)."""
    rows = ", ".join(f"(${3 + 4 * i}, ${4 + 4 * i}, $1, ${5 + 4 * i}, ${6 + 4 * i}, $2)" for i in range(boards))
    return ADD_ENTRIES.replace(":entries", rows)


TOUCH_USER = "UPDATE users SET username = $1, updated_at = $2 WHERE id = $3 AND username <> $1"

# The parameters of `place`: the user, the award's id, its increment, the time, the username
# when the statement touches the user, then each board and period in turn (`:board`, `:period`
# below; `#` numbers the board).
PLACE_HEAD = 4
PLACE_CHANGE = (
    "h# AS (INSERT INTO board_history (board, period, user_id, award_id, value, previous_score, new_score, "
    "created_at) SELECT :board, :period, $1, $2, $3, e.score, COALESCE(e.score, 0) + $3, $4 FROM (SELECT 1) AS one "
    "LEFT JOIN board_entries e ON e.board = :board AND e.period = :period AND e.user_id = $1 "
    "RETURNING id, previous_score, new_score), "
    "p# AS (INSERT INTO board_entries (board, period, user_id, score, seq, updated_at) "
    "SELECT :board, :period, $1, h#.new_score, h#.id, $4 FROM h# "
    "ON CONFLICT (board, period, user_id) DO UPDATE SET score = excluded.score, seq = excluded.seq, "
    "updated_at = excluded.updated_at RETURNING subscore, metadata)"
)
PLACE_COLUMNS = "h#.id, h#.previous_score, h#.new_score, p#.subscore, p#.metadata"
PLACE_SCORES = (
    "scored AS (UPDATE score_history SET previous_score = COALESCE(h0.previous_score, 0), new_score = h0.new_score "
    "FROM h0 WHERE score_history.id = $2 RETURNING 1)"
)
PLACE_TOUCH = (
    "touched AS (UPDATE users SET username = $5, updated_at = $4 WHERE id = $1 AND username <> $5 RETURNING 1)"
)


def place(boards: int, *, touch: bool) -> str:
    """ADD_CHANGE and ADD_ENTRY on each of `boards` (at least one), SET_AWARD_SCORES from the
    first and, with `touch`, TOUCH_USER, as one statement. It answers one row: for each board its
    history row's id, previous score, new score, and the entry's subscore and metadata.

    It reads the entries in a snapshot taken after the user's lock was granted (by RECORD_AWARD or
    LOCK_USER, an earlier statement of the transaction), so no concurrent write of the user is missed."""
    first = PLACE_HEAD + 1 + int(touch)
    parts, columns, sources = [], [], []
    for i in range(boards):
        board, period = "$" + str(first + 2 * i), "$" + str(first + 2 * i + 1)
        parts.append(PLACE_CHANGE.replace("#", str(i)).replace(":board", board).replace(":period", period))
        columns.append(PLACE_COLUMNS.replace("#", str(i)))
        sources.append("h#, p#".replace("#", str(i)))
    parts.append(PLACE_SCORES)
    if touch:
        parts.append(PLACE_TOUCH)
    return "WITH " + ", ".join(parts) + " SELECT " + ", ".join(columns) + " FROM " + ", ".join(sources)  # noqa: S608 - constants only


# PostgreSQL: the awards of a loop turn as one call of a function, one round trip and one
# transaction (a group commit, as SQLite's writer has), for the claims that need nothing but the
# token spent and the boards placed (no attestation, cheat rules or back-off). The turn's awards
# get their history ids in the order they came, and one call runs at a time: ties on a board go to
# the awards in the order this process placed them. Ten pooled transactions at once committed in
# an order that jittered by a few places from one turn to the next, and every award that drew an
# earlier id than the one it now tied with passed it (BENCHMARKS.md, "Group commit for PostgreSQL").
#
# The call locks its tokens, then its users, each in the order of their keys, before it writes: the
# order in which an award's own transaction (SPEND) locks them, and an operator's act on a whole
# board its users. Two calls, or a call and one of those, then never each hold what the other waits
# for (a call that fails all the same runs each claim alone, below). Each claim then runs SPEND and
# the writes of its boards over arrays (each statement of a function takes its own snapshot, so the
# second reads the entries after the first locked the user). A claim it cannot award (a refused token, a replay,
# a repeated action, a disqualified user) keeps nothing (a token SPEND spent without recording the
# award is put back) and answers one row with no award: that claim then runs the shared steps in a
# transaction of its own, which say why. Parameters: per claim SPEND's six, the username and its
# number of boards; then every claim's boards and their periods, one claim after the other.
# The earlier version's `scoreboard_award_v1` (a claim a call) is left where it is: its processes
# still call it while a rolling restart replaces them.
AWARD_FUNCTION = "scoreboard_awards_v1"
AWARDS_AT_ONCE = "SELECT * FROM " + AWARD_FUNCTION + "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"  # noqa: S608 - constants only


def at_once_arguments(claims: list[AwardClaim]) -> tuple[list[Any], ...]:
    """AWARDS_AT_ONCE's parameters for these claims."""
    boards = [where for claim in claims for where in claim.boards]
    return (
        [c.now_ms for c in claims],
        [c.nonce for c in claims],
        [c.user_id for c in claims],
        [c.action_type for c in claims],
        [c.action_id for c in claims],
        [c.now_ms - c.min_elapsed_ms for c in claims],
        [c.username for c in claims],
        [len(c.boards) for c in claims],
        [where.board for where in boards],
        [where.period for where in boards],
    )


_CLAIM = {"$1": "c_now", "$2": "c_nonce", "$3": "c_user", "$4": "c_type", "$5": "c_action", "$6": "c_issued"}
CREATE_AWARD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION "  # noqa: S608 - constants only
    + AWARD_FUNCTION
    + "(bigint[], text[], text[], text[], text[], bigint[], text[], int[], text[], text[]) "
    "RETURNS TABLE (o_claim int, o_award bigint, o_increment bigint, o_seq bigint, o_previous bigint, "
    "o_new bigint, o_subscore bigint, o_metadata text) LANGUAGE plpgsql AS $fn$ DECLARE v record; "
    "c_now bigint; c_nonce text; c_user text; c_type text; c_action text; c_issued bigint; c_username text; "
    "c_boards text[]; c_periods text[]; c_first int := 1; c_n int; BEGIN "
    "PERFORM 1 FROM action_tokens WHERE nonce = ANY($2) ORDER BY nonce FOR UPDATE; "
    "PERFORM 1 FROM users WHERE id = ANY($3) ORDER BY id FOR UPDATE; "
    "FOR c_n IN 1 .. coalesce(array_length($2, 1), 0) LOOP "
    "c_now := $1[c_n]; c_nonce := $2[c_n]; c_user := $3[c_n]; c_type := $4[c_n]; c_action := $5[c_n]; "
    "c_issued := $6[c_n]; c_username := $7[c_n]; c_boards := $9[c_first : c_first + $8[c_n] - 1]; "
    "c_periods := $10[c_first : c_first + $8[c_n] - 1]; c_first := c_first + $8[c_n]; "
    + re.sub(r"\$[1-6]\b", lambda m: _CLAIM[m.group(0)], SPEND)
    + " INTO v; IF NOT FOUND OR v.id IS NULL THEN "
    "IF FOUND THEN " + RELEASE.replace("$1", "c_nonce") + "; END IF; "
    "RETURN QUERY SELECT c_n, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, "
    "NULL::bigint, NULL::text; CONTINUE; END IF; "
    "RETURN QUERY WITH h AS (INSERT INTO board_history (board, period, user_id, award_id, value, "
    "previous_score, new_score, created_at) SELECT b.board, b.period, c_user, v.id, v.score_increment, e.score, "
    "COALESCE(e.score, 0) + v.score_increment, c_now FROM unnest(c_boards, c_periods) AS b(board, period) "
    "LEFT JOIN board_entries e ON e.board = b.board AND e.period = b.period AND e.user_id = c_user "
    "RETURNING id, board, period, previous_score, new_score), "
    "p AS (INSERT INTO board_entries (board, period, user_id, score, seq, updated_at) "
    "SELECT h.board, h.period, c_user, h.new_score, h.id, c_now FROM h "
    "ON CONFLICT (board, period, user_id) DO UPDATE SET score = excluded.score, seq = excluded.seq, "
    "updated_at = excluded.updated_at RETURNING board, period, subscore, metadata), "
    "scored AS (UPDATE score_history SET previous_score = COALESCE(h.previous_score, 0), new_score = h.new_score "
    "FROM h WHERE score_history.id = v.id AND h.board = c_boards[1] AND h.period = c_periods[1] RETURNING 1), "
    "touched AS (UPDATE users SET username = c_username, updated_at = c_now WHERE id = c_user "
    "AND username <> c_username RETURNING 1) "
    "SELECT c_n, v.id::bigint, v.score_increment::bigint, h.id::bigint, h.previous_score::bigint, "
    "h.new_score::bigint, p.subscore::bigint, p.metadata::text FROM unnest(c_boards, c_periods) WITH ORDINALITY "
    "AS b(board, period, ord) JOIN h ON h.board = b.board AND h.period = b.period "
    "JOIN p ON p.board = b.board AND p.period = b.period ORDER BY b.ord; END LOOP; END $fn$"
)

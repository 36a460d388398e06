"""The Lua scripts of the Redis ranking (app/ranking/redis.py), each one atomic step on a board
period's keys: its sorted set `rank`, its hash `cards`, its hash `removed`, the shared `names` and
`excluded`. The member and card layouts are described there; the head's widths come from ties.py."""

from __future__ import annotations

from string import Template

from .ties import ORDER_DIGITS, SUBSCORE_DIGITS


def _lua(source: str) -> str:
    # The head's layout is ties.py's alone; the scripts take its widths from there.
    return Template(source).substitute(order=ORDER_DIGITS, seq_from=SUBSCORE_DIGITS + 1, user_from=ORDER_DIGITS + 2)


# KEYS: names, excluded, then (rank, cards, removed) of each board period; ARGV: user, name, then
# (score, card, ms to live or "") of each: one user's standings on several boards in one call.
# Returns {previous rank or 0, rank} of each; an older standing than the one held changes nothing.
# Placed nowhere: an excluded (disqualified) user, {0, 0} everywhere; a standing no newer than an
# entry of the user's an operator removed lately, {0, -the rank it would have had}.
PUT = _lua("""
local user, name = ARGV[1], ARGV[2]
local out = {}
if redis.call('SISMEMBER', KEYS[2], user) == 1 then
  for i = 3, #KEYS, 3 do out[#out + 1] = 0; out[#out + 1] = 0 end
  return out
end
local function place(rank_key, cards_key, removed_key, score, card, ttl)
  local member = string.sub(card, 1, $order) .. ':' .. user
  local old = redis.call('HGET', cards_key, user)
  local previous = 0
  if old then
    local held = string.sub(old, 1, $order) .. ':' .. user
    local at = redis.call('ZREVRANK', rank_key, held)
    if at then
      previous = at + 1
      if string.sub(old, $seq_from, $order) <= string.sub(card, $seq_from, $order) then
        member = nil
      else
        redis.call('ZREM', rank_key, held)
      end
    end
  end
  if previous == 0 then
    local removed = redis.call('HGET', removed_key, user)
    if removed and removed <= string.sub(card, $seq_from, $order) then
      redis.call('ZADD', rank_key, score, member)
      local would = redis.call('ZREVRANK', rank_key, member) + 1
      redis.call('ZREM', rank_key, member)
      return 0, -would
    end
  end
  local rank = previous
  if member then
    redis.call('ZADD', rank_key, score, member)
    redis.call('HSET', cards_key, user, card)
    redis.call('HSET', KEYS[1], user, name)
    rank = redis.call('ZREVRANK', rank_key, member) + 1
  end
  if ttl ~= '' then
    redis.call('PEXPIRE', rank_key, ttl)
    redis.call('PEXPIRE', cards_key, ttl)
  end
  return previous, rank
end
for i = 3, #KEYS, 3 do
  local previous, rank = place(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[i], ARGV[i + 1], ARGV[i + 2])
  out[#out + 1] = previous
  out[#out + 1] = rank
end
return out
""")

# KEYS: rank, cards, names, excluded, removed; ARGV: ms to live or "", then (user, score, card,
# name) repeated. PUT's rules for a whole chunk of a rebuild in one call, with one command per key
# for the whole chunk (a call per user spent 40 s of a 1M-user rebuild packing commands in the
# client, then ~20 s in per-user commands).
LOAD = _lua("""
local users = {}
for i = 2, #ARGV, 4 do users[#users + 1] = ARGV[i] end
local olds, marks = {}, {}
if #users > 0 then
  olds = redis.call('HMGET', KEYS[2], unpack(users))
  marks = redis.call('HMGET', KEYS[5], unpack(users))
end
local z, c, n = {}, {}, {}
for j, user in ipairs(users) do
  local i, old, mark = 4 * j - 2, olds[j], marks[j]
  local card = ARGV[i + 2]
  local seq = string.sub(card, $seq_from, $order)
  local newer = (not old or string.sub(old, $seq_from, $order) > seq) and (not mark or mark > seq)
  if newer and redis.call('SISMEMBER', KEYS[4], user) == 0 then
    if old then redis.call('ZREM', KEYS[1], string.sub(old, 1, $order) .. ':' .. user) end
    z[#z + 1] = ARGV[i + 1]; z[#z + 1] = string.sub(card, 1, $order) .. ':' .. user
    c[#c + 1] = user; c[#c + 1] = card
    n[#n + 1] = user; n[#n + 1] = ARGV[i + 3]
  end
end
if #z > 0 then
  redis.call('ZADD', KEYS[1], unpack(z))
  redis.call('HSET', KEYS[2], unpack(c))
  redis.call('HSET', KEYS[3], unpack(n))
end
if ARGV[1] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return 0
""")

# KEYS: rank, cards, names; ARGV: first and last index (0-based, both >= 0).
# Returns {size, then member, score, card or "", name, ...} in rank order: a rank page in one call.
SLICE = _lua("""
local rows = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local out = {redis.call('ZCARD', KEYS[1])}
-- HMGET by chunks: unpack() of more than ~8000 values overflows Lua's stack.
for from = 1, #rows, 2000 do
  local users = {}
  for i = from, math.min(from + 1999, #rows), 2 do users[#users + 1] = string.sub(rows[i], $user_from) end
  local cards = redis.call('HMGET', KEYS[2], unpack(users))
  local names = redis.call('HMGET', KEYS[3], unpack(users))
  for j, user in ipairs(users) do
    local i = from + 2 * j - 2
    out[#out + 1] = rows[i]
    out[#out + 1] = rows[i + 1]
    out[#out + 1] = cards[j] or ''
    out[#out + 1] = names[j] or user
  end
end
return out
""")

# KEYS: rank, cards, names; ARGV: user, radius. Returns {size, rank or 0, then member, score,
# card, name for ranks rank-radius .. rank+radius}: around-me in one call (the slice needs the rank).
AROUND = _lua("""
local out = {redis.call('ZCARD', KEYS[1]), 0}
local card = redis.call('HGET', KEYS[2], ARGV[1])
if not card then return out end
local rank = redis.call('ZREVRANK', KEYS[1], string.sub(card, 1, $order) .. ':' .. ARGV[1])
if not rank then return out end
out[2] = rank + 1
local radius = tonumber(ARGV[2])
local rows = redis.call('ZREVRANGE', KEYS[1], math.max(rank - radius, 0), rank + radius, 'WITHSCORES')
local users = {}
for i = 1, #rows, 2 do users[#users + 1] = string.sub(rows[i], $user_from) end
local cards = redis.call('HMGET', KEYS[2], unpack(users))
local names = redis.call('HMGET', KEYS[3], unpack(users))
for j, user in ipairs(users) do
  out[#out + 1] = rows[2 * j - 1]
  out[#out + 1] = rows[2 * j]
  out[#out + 1] = cards[j] or ''
  out[#out + 1] = names[j] or user
end
return out
""")

# KEYS: rank, cards, names; ARGV: user ids. Returns {size, then member, rank, score, card, name
# for each of these users on the board}.
POSITIONS = _lua("""
local out = {redis.call('ZCARD', KEYS[1])}
for i = 1, #ARGV do
  local card = redis.call('HGET', KEYS[2], ARGV[i])
  if card then
    local member = string.sub(card, 1, $order) .. ':' .. ARGV[i]
    local rank = redis.call('ZREVRANK', KEYS[1], member)
    if rank then
      out[#out + 1] = member
      out[#out + 1] = rank + 1
      out[#out + 1] = redis.call('ZSCORE', KEYS[1], member)
      out[#out + 1] = card
      out[#out + 1] = redis.call('HGET', KEYS[3], ARGV[i]) or ARGV[i]
    end
  end
end
return out
""")

# KEYS: rank, cards; ARGV: user ids. Returns {user, rank, score, ...} for those on the board.
RANKS = _lua("""
local out = {}
for i = 1, #ARGV do
  local card = redis.call('HGET', KEYS[2], ARGV[i])
  if card then
    local member = string.sub(card, 1, $order) .. ':' .. ARGV[i]
    local rank = redis.call('ZREVRANK', KEYS[1], member)
    if rank then
      out[#out + 1] = ARGV[i]
      out[#out + 1] = rank + 1
      out[#out + 1] = redis.call('ZSCORE', KEYS[1], member)
    end
  end
end
return out
""")

# KEYS: names; ARGV: user, name. Only users who were ever put have a name; 1 if it changed.
RENAME = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or held == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


# KEYS: (rank, cards, removed) of each board period, then names, then excluded; ARGV: user, what
# else: "forget" (an erased user: their name, their marks of removed entries and their place among
# the excluded go too), "exclude" (a disqualified user: excluded in the same step, so no put lands
# between), or "".
REMOVE = _lua("""
local user = ARGV[1]
for i = 1, #KEYS - 2, 3 do
  local card = redis.call('HGET', KEYS[i + 1], user)
  if card then
    redis.call('ZREM', KEYS[i], string.sub(card, 1, $order) .. ':' .. user)
    redis.call('HDEL', KEYS[i + 1], user)
  end
  if ARGV[2] == 'forget' then redis.call('HDEL', KEYS[i + 2], user) end
end
if ARGV[2] == 'forget' then
  redis.call('HDEL', KEYS[#KEYS - 1], user)
  redis.call('SREM', KEYS[#KEYS], user)
elseif ARGV[2] == 'exclude' then
  redis.call('SADD', KEYS[#KEYS], user)
end
return 0
""")

# KEYS: rank, cards, removed of one board period; ARGV: ms the marks live, then (user, the removed
# entry's seq as its head encodes it) repeated. Each entry no newer than its removal leaves the
# board and the removal is marked (a later mark of a user stays).
TAKE_OFF = _lua("""
for i = 2, #ARGV, 2 do
  local user, mark = ARGV[i], ARGV[i + 1]
  local card = redis.call('HGET', KEYS[2], user)
  if not card or string.sub(card, $seq_from, $order) >= mark then
    if card then
      redis.call('ZREM', KEYS[1], string.sub(card, 1, $order) .. ':' .. user)
      redis.call('HDEL', KEYS[2], user)
    end
    local held = redis.call('HGET', KEYS[3], user)
    if not held or held > mark then redis.call('HSET', KEYS[3], user, mark) end
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return 0
""")

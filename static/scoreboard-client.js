// Scoreboard's JavaScript client: one ES module, no build step, no dependencies.
//
// It keeps subscriptions live over the best transport that works: the WebSocket; while that is down,
// each board's top 10 over Server-Sent Events (GET /api/v1/boards/{board}/stream) and everything
// else polled over REST; a top whose event stream fails too is polled as well. Every failed
// WebSocket attempt (backoff with full jitter) tries the event streams again, and the first socket
// that works takes every subscription back. README "Clients" shows how it is used.
//
//   const client = new ScoreboardClient({ token });   // a user JWT, or none: anonymous
//   client.leaderboard('weekly').on('update', ({ leaderboard }) => show(leaderboard));
//   client.connect();

const TRANSPORTS = ['websocket', 'sse', 'polling'];
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
// A server that drains closes with 1012 "service restart": another one serves already. Come back at
// once, at a random moment within this window, so that the thousands of clients of one server do not
// all reach the others in the same instant (1001 "going away": servers before the drain).
const RESTART_CODES = new Set([1001, 1012]);
const RESTART_JITTER_MS = 1000;
const CLOSE_UNAUTHORIZED = 4401;
const STABLE_MS = 10000; // a socket that served this long counts as healthy: the backoff starts over
const GREETING_MS = 10000; // for `connected` to arrive; a proxy may accept a socket and never forward it
const PING_MS = 25000; // below the idle timeouts of common proxies (30-60 s)
const STALE_MS = 2 * PING_MS + 10000; // a half-open TCP connection never fires `close`
const POLL_MS = 2000;
const FETCH_TIMEOUT_MS = 5000;
const TOP_SIZE = 10;
const REMEMBERED_NOTICES = 500; // ids of notices already delivered, against a replay's repeats
const BOARD_MESSAGES = new Set(['leaderboard_update', 'period_ended', 'ranks_update']);
const STREAM_EVENTS = ['leaderboard_update', 'period_ended'];
const DOTS = /^\.+$/; // a path segment no URL keeps

/** Named listeners: `on(type, fn)` returns the function that removes `fn` again. */
class Emitter {
  #listeners = new Map();

  on(type, fn) {
    let listeners = this.#listeners.get(type);
    if (!listeners) this.#listeners.set(type, (listeners = new Set()));
    listeners.add(fn);
    return () => listeners.delete(fn);
  }

  /** Call the listeners of `type`; one that throws is reported and does not stop the others. */
  emit(type, value) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        fn(value);
      } catch (err) {
        console.error(`scoreboard-client: a "${type}" listener failed`, err);
      }
    }
  }
}

/**
 * One live subscription: a board's top 10 (`leaderboard`), a window of ranks (`ranks`), the ranks
 * around the signed-in user (`around`) or that user's notices (`notifications`). Events: `update`
 * (the whole current state, whichever transport brought it), `period_ended`, `notice`, `gap` (a
 * message was missed: a fresh snapshot is on its way) and `error` (the server refused or ended it;
 * it ends).
 */
export class Subscription extends Emitter {
  #client;
  #rows = new Map(); // a window's entries by rank

  constructor(client, channel, board, params) {
    super();
    this.#client = client;
    this.channel = channel;
    this.board = board ?? null; // none: the default board, its id here once the client knows it
    this.params = params;
    this.value = null; // the last `update`
    this.after = params.after ?? null; // notifications: the newest id delivered
    this.ready = params.after !== 'now'; // `now` waits for the newest kept id
    this.closed = false;
  }

  get key() {
    return keyOf(this.channel, this.board);
  }

  /** Whether it follows the signed-in user (and needs a token). */
  get personal() {
    return this.channel === 'around' || this.channel === 'notifications';
  }

  /** Leave it; its listeners hear nothing more. */
  close() {
    this.#client.unsubscribe(this);
  }

  /** The WebSocket's `subscribe` message (undefined fields are left out of the JSON). */
  message() {
    const { from, to, radius, maxRate } = this.params;
    const after = this.channel === 'notifications' && this.after !== null ? this.after : undefined;
    const board = this.board ?? undefined;
    return { type: 'subscribe', channel: this.channel, board, from, to, radius, maxRate, after };
  }

  /** The event stream's path below the API (only a top has one). */
  streamPath() {
    if (this.channel !== 'leaderboard') return null;
    const rate = this.params.maxRate ? `?maxRate=${encodeURIComponent(this.params.maxRate)}` : '';
    return `${boardPath(this.board)}/stream${rate}`;
  }

  /** The REST read that stands in for it while it is polled; null when there is none yet. */
  pollPath(userId) {
    const { from, to, radius } = this.params;
    switch (this.channel) {
      case 'leaderboard':
        return `${boardPath(this.board)}/top?limit=${TOP_SIZE}`;
      case 'ranks':
        return `${boardPath(this.board)}/ranks?from=${from}&limit=${to - from + 1}`;
      case 'around':
        if (!userId) return null;
        return `${boardPath(this.board)}/around/${encodeURIComponent(userId)}?radius=${radius}`;
      default:
        return `/users/me/notifications?after=${this.after ?? 0}`;
    }
  }

  /** Apply a board channel's message, in order (the client checked its `seq`). */
  receive(msg, via) {
    const data = msg.data;
    if (msg.type === 'period_ended') {
      this.emit('period_ended', data);
    } else if (msg.type === 'leaderboard_update') {
      this.#top(data, via);
    } else {
      // A snapshot replaces the window, a diff overwrites its ranks; ranks past the end of a board
      // that shrank (an erasure) are gone.
      if (data.snapshot) this.#rows.clear();
      for (const entry of data.entries) this.#rows.set(entry.rank, entry);
      for (const rank of this.#rows.keys()) if (rank > data.total) this.#rows.delete(rank);
      this.#window(data, data.snapshot, via);
    }
  }

  /** Apply a REST answer read while polling: always the whole state. */
  receivePolled(data) {
    if (this.channel === 'leaderboard') {
      this.#top(data, 'polling');
      return;
    }
    // GET /ranks answers `leaderboard`, GET /around `entries`; both with more fields than a window's.
    const read = data.entries ?? data.leaderboard ?? [];
    this.#rows = new Map(read.map(({ rank, userId, username, score }) => [rank, { rank, userId, username, score }]));
    this.#window(data, true, 'polling');
  }

  // `total` (the board's entries) comes live; a polled top has none.
  #top({ board, period, leaderboard, updatedAt, total }, via) {
    this.#update({ board, period, leaderboard, updatedAt, total, via });
  }

  #window({ board, period, total }, snapshot, via) {
    const entries = [...this.#rows.values()].sort((a, b) => a.rank - b.rank);
    this.#update({ board, period, channel: this.channel, entries, total, snapshot, via });
  }

  #update(value) {
    this.value = value;
    this.emit('update', value);
  }
}

/**
 * A connection to a Scoreboard server that keeps its subscriptions live across drops, restarts and
 * networks where WebSockets (or event streams too) do not get through.
 *
 * Options: `url` (the server, default this page's origin), `token` (a user JWT; without one the
 * client is anonymous and `around` and `notifications` wait for `setToken`), `transports` (those it
 * may use, default all three), `pollMs`, `backoffBaseMs`, `backoffCapMs`.
 *
 * Events: `state` ({status: connecting | live | reconnecting | closed, transport: websocket | sse |
 * polling | null, retryAt}), `unauthorized` (the token was refused: the client goes on anonymous),
 * `error` (a refusal not tied to a subscription), and every server message by its `type`
 * (`overtaken`, `score_update`, `rank_change`, `leaderboard_update` …), board channels' once applied.
 */
export class ScoreboardClient extends Emitter {
  #url;
  #token = null;
  #userId = null;
  #transports;
  #pollMs;
  #backoffBaseMs;
  #backoffCapMs;
  #subs = new Map(); // key -> the subscription (one per channel and board, as the server holds them)
  #defaultBoard = null; // the id of the board meant when none is named, once known
  #links = new Map(); // subscription -> how the current transport carries it
  #ws = null;
  #socketUp = false; // the socket said `connected`: it carries every subscription
  #degraded = false; // the socket is down: event streams and polls carry them
  #pending = []; // subscriptions sent, in order, each awaiting its `subscribed` or `error`
  #attempt = 0;
  #timers = { retry: 0, greeting: 0, ping: 0, stable: 0 };
  #retryAt = 0;
  #heardAt = 0;
  #started = false;
  #closed = false;
  #seen = new Set(); // ids of notices delivered
  #noticesOf = null; // the user those are of
  #state = '';
  #online = () => {
    if (this.#timers.retry) this.#open(); // the browser knows the network is back: skip the wait
  };

  constructor({
    url,
    token = null,
    transports = TRANSPORTS,
    pollMs = POLL_MS,
    backoffBaseMs = BACKOFF_BASE_MS,
    backoffCapMs = BACKOFF_CAP_MS,
  } = {}) {
    super();
    this.#url = new URL(url ?? globalThis.location.origin);
    this.#transports = new Set(transports);
    this.#pollMs = pollMs;
    this.#backoffBaseMs = backoffBaseMs;
    this.#backoffCapMs = backoffCapMs;
    this.#setToken(token);
  }

  /** The signed-in user's id (from the token, then as the server confirms it), or null. */
  get userId() {
    return this.#userId;
  }

  /** How the client is doing now: see the `state` event. */
  get state() {
    if (this.#closed) return { status: 'closed', transport: null };
    if (this.#socketUp) return { status: 'live', transport: 'websocket' };
    const links = [...this.#links.values()];
    if (links.some((link) => link.streamOpen)) return { status: 'live', transport: 'sse' };
    if (links.some((link) => link.pollOk)) return { status: 'live', transport: 'polling' };
    if (this.#timers.retry) return { status: 'reconnecting', transport: null, retryAt: this.#retryAt };
    return { status: 'connecting', transport: null };
  }

  /** Start connecting; subscriptions made before or after are all carried. */
  connect() {
    if (this.#started || this.#closed) return this;
    this.#started = true;
    globalThis.addEventListener?.('online', this.#online);
    this.#open();
    return this;
  }

  /** Close everything for good. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    globalThis.removeEventListener?.('online', this.#online);
    this.#dropSocket(1000);
    clearTimeout(this.#timers.retry);
    for (const sub of this.#subs.values()) this.#leaveFallback(sub);
    this.#report();
  }

  /** Use another token (null: anonymous) from now on: the socket is opened again with it. */
  setToken(token) {
    this.#setToken(token);
    const notices = this.#subs.get(keyOf('notifications', null));
    if (this.#closed) return;
    if (this.#started) {
      this.#dropSocket(1000);
      this.#attempt = 0;
      this.#open();
    }
    if (notices) this.#prepare(notices);
  }

  /** A board's top 10: `update` {board, period, leaderboard, updatedAt, total, via}, `period_ended`. */
  leaderboard(board, { maxRate } = {}) {
    return this.#add(new Subscription(this, 'leaderboard', board, { maxRate }));
  }

  /** Ranks `from`..`to` of a board (at most 50): `update` {entries, total, snapshot, …}. */
  ranks(board, from, to, { maxRate } = {}) {
    return this.#add(new Subscription(this, 'ranks', board, { from, to, maxRate }));
  }

  /** The `radius` ranks either side of the signed-in user (at most 25), following them as they move. */
  around(board, radius = 5, { maxRate } = {}) {
    return this.#add(new Subscription(this, 'around', board, { radius, maxRate }));
  }

  /**
   * The signed-in user's notices (`overtaken` …) as `notice` events, each once, none missed across
   * reconnects. `after`: an id (those after it are replayed first), undefined (every kept one), or
   * 'now' (none from before this call).
   */
  notifications({ after } = {}) {
    const sub = this.#add(new Subscription(this, 'notifications', null, { after }));
    this.#prepare(sub);
    return sub;
  }

  /** Leave a subscription (what `subscription.close()` does). */
  unsubscribe(sub) {
    if (sub.closed) return;
    sub.closed = true;
    this.#leaveFallback(sub);
    this.#links.delete(sub);
    if (this.#subs.get(sub.key) !== sub) return;
    this.#subs.delete(sub.key);
    if (this.#socketUp && sub.ready) {
      this.#send({ type: 'unsubscribe', channel: sub.channel, board: sub.board ?? undefined });
    }
    this.#report();
  }

  /** GET a route below /api/v1 (`/boards`, …): its `data`, or null when it failed in any way. */
  async read(path, { auth = false } = {}) {
    const answer = await this.#fetch(path, auth);
    return answer && answer.ok ? answer.data : null;
  }

  // ------------------------------------------------------------------ subscriptions

  #setToken(token) {
    this.#token = token || null;
    this.#userId = this.#token ? userOf(this.#token) : null;
    if (!this.#userId || this.#userId === this.#noticesOf) return;
    // Another user: the ids delivered were not theirs, and theirs start where the caller asked
    // (`now`: at their newest when their token came), not after the last user's.
    this.#noticesOf = this.#userId;
    this.#seen.clear();
    const sub = this.#subs.get(keyOf('notifications', null));
    if (!sub) return;
    this.#leaveFallback(sub);
    this.#links.get(sub).reading = null;
    sub.after = sub.params.after ?? null;
    sub.ready = sub.params.after !== 'now';
  }

  // Notices `after: 'now'` read the newest kept id first, which takes a token: without one they
  // wait for setToken, as every personal subscription does.
  #prepare(sub) {
    if (sub.ready) this.#attach(sub);
    else if (this.#token && !this.#links.get(sub).reading) this.#startFromNewest(sub);
  }

  #add(sub) {
    if (sub.board === null && sub.channel !== 'notifications') sub.board = this.#defaultBoard;
    const held = this.#subs.get(sub.key);
    if (held) this.#replaced(held); // the server holds one per channel and board: there too
    this.#subs.set(sub.key, sub);
    this.#links.set(sub, newLink());
    this.#attach(sub);
    return sub;
  }

  #replaced(sub) {
    sub.closed = true;
    this.#leaveFallback(sub);
    this.#links.delete(sub);
  }

  // A subscription asked for without a board learns which one the server gave it: its messages
  // name that board. One held for it already was replaced on the server by the later subscribe.
  #settle(sub, board) {
    this.#defaultBoard = board;
    if (this.#subs.get(sub.key) === sub) this.#subs.delete(sub.key);
    sub.board = board;
    const held = this.#subs.get(sub.key);
    if (held && this.#pending.includes(held)) {
      this.#replaced(sub);
      return;
    }
    if (held) this.#replaced(held);
    this.#subs.set(sub.key, sub);
  }

  // Put a subscription on whatever carries the others now.
  #attach(sub) {
    if (!this.#started || this.#closed || !sub.ready) return;
    if (this.#socketUp) this.#subscribeOnSocket(sub);
    else if (this.#degraded) this.#fallBackOne(sub);
  }

  // `after: 'now'`: the newest kept notice's id first (a network failure is tried again; a refused
  // token waits for the next; another refusal ends the subscription, as the socket's would).
  async #startFromNewest(sub) {
    const link = this.#links.get(sub);
    const reading = (link.reading = {}); // a read for the user before is not this one
    const current = () => link.reading === reading && !sub.closed && !this.#closed;
    while (current()) {
      const answer = await this.#fetch('/users/me/notifications', true);
      if (!current()) return;
      if (answer && answer.ok) {
        const ids = (answer.data.notifications ?? []).map((n) => n.id).filter(Number.isInteger);
        sub.after = ids.length ? Math.max(...ids) : 0;
        sub.ready = true;
        link.reading = null;
        this.#attach(sub);
        return;
      }
      if (answer && answer.error.code === 'UNAUTHORIZED') {
        link.reading = null;
        return;
      }
      if (answer && this.#definitive(answer.error)) {
        this.#refuse(sub, answer.error);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.#pollMs));
    }
  }

  #refuse(sub, error) {
    this.unsubscribe(sub);
    sub.emit('error', error);
  }

  // ------------------------------------------------------------------ the WebSocket

  #open() {
    clearTimeout(this.#timers.retry);
    this.#timers.retry = 0;
    if (this.#closed) return;
    if (!this.#transports.has('websocket') || typeof WebSocket !== 'function') {
      this.#lost(null, 0); // counts as a failed attempt: the fallbacks serve, retried with the backoff
      return;
    }
    const url = new URL('/ws/scoreboard', this.#url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(url.href);
    } catch (err) {
      console.warn('scoreboard-client: cannot open a WebSocket', err);
      this.#lost(null, 0);
      return;
    }
    this.#ws = ws;
    this.#timers.greeting = setTimeout(() => ws.close(), GREETING_MS);
    ws.onmessage = (ev) => this.#onSocketMessage(ev.data);
    ws.onclose = (ev) => this.#lost(ws, ev.code);
    this.#report();
  }

  // `connected`: the socket serves. It takes every subscription back from the fallbacks.
  #up() {
    clearTimeout(this.#timers.greeting);
    this.#socketUp = true;
    this.#degraded = false;
    this.#heardAt = Date.now();
    this.#timers.ping = setInterval(() => this.#keepalive(), PING_MS);
    this.#timers.stable = setTimeout(() => { this.#attempt = 0; }, STABLE_MS);
    if (this.#token) this.#send({ type: 'auth', token: this.#token }); // answered before what follows
    for (const sub of this.#subs.values()) {
      this.#leaveFallback(sub);
      if (sub.ready) this.#subscribeOnSocket(sub);
    }
    this.#report();
  }

  #subscribeOnSocket(sub) {
    if (sub.personal && !this.#token) return; // waits for setToken
    const link = this.#links.get(sub);
    link.seq = null;
    link.awaiting = true; // what arrives before `subscribed` belongs to the subscription it replaces
    this.#pending.push(sub);
    this.#send(sub.message());
  }

  #send(message) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  #keepalive() {
    if (Date.now() - this.#heardAt > STALE_MS) this.#lost(this.#ws, 1006);
    else this.#send({ type: 'ping' });
  }

  // Forget the socket (closing it with `code` when given) and what it carried.
  #dropSocket(code) {
    const ws = this.#ws;
    this.#ws = null;
    this.#socketUp = false;
    this.#pending = [];
    clearTimeout(this.#timers.greeting);
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.stable);
    for (const link of this.#links.values()) Object.assign(link, { seq: null, awaiting: false, refused: false });
    if (!ws) return;
    ws.onmessage = ws.onclose = null; // late events of a socket given up are not ours any more
    if (code && ws.readyState < WebSocket.CLOSING) ws.close(code);
  }

  // The socket ended (or could not be had): try again later, the fallbacks serving meanwhile.
  #lost(ws, code) {
    if (ws !== this.#ws) return;
    const served = this.#socketUp;
    this.#dropSocket(ws && ws.readyState < WebSocket.CLOSING ? 1000 : 0);
    if (this.#closed) return;
    if (code === CLOSE_UNAUTHORIZED) {
      this.#setToken(null); // invalid or expired: a new one comes through setToken
      this.emit('unauthorized', {});
    }
    // A restart close of a socket that served: straight back, showing the last state meanwhile.
    // Only once in a row: a server that keeps closing that way gets the backoff like any failure.
    const restart = served && this.#attempt === 0 && RESTART_CODES.has(code);
    const ceiling = Math.min(this.#backoffCapMs, this.#backoffBaseMs * 2 ** this.#attempt);
    const delay = Math.random() * (restart ? RESTART_JITTER_MS : ceiling); // full jitter
    this.#attempt = Math.min(this.#attempt + 1, 16);
    this.#retryAt = Date.now() + delay;
    this.#timers.retry = setTimeout(() => this.#open(), delay);
    if (!restart) this.#fallBack();
    this.#report();
  }

  #onSocketMessage(raw) {
    const msg = parse(raw);
    if (!msg) return;
    this.#heardAt = Date.now();
    switch (msg.type) {
      case 'connected':
        if (msg.userId) this.#userId = msg.userId;
        this.#up();
        break;
      case 'authenticated':
        this.#userId = msg.userId;
        this.#retryRefused();
        break;
      case 'subscribed': {
        // No proof that the socket serves (one over the user's limit may answer and then close
        // with 4429): the backoff starts over after STABLE_MS, or on a pong.
        const sub = this.#answered(msg.channel, msg.board);
        const link = sub && this.#links.get(sub); // none for one left or replaced meanwhile
        if (link) link.awaiting = false;
        if (link && sub.board === null && msg.board) this.#settle(sub, msg.board);
        break;
      }
      case 'unsubscribed': {
        // Also the answer to an `unsubscribe` of ours: that one is gone from #subs already, or
        // replaced by one still awaiting its `subscribed`. Any other the server ended.
        const sub = this.#subs.get(keyOf(msg.channel, msg.board));
        if (sub && !this.#pending.includes(sub)) {
          this.#refuse(sub, { code: 'UNSUBSCRIBED', message: 'The server ended this subscription' });
        }
        break;
      }
      case 'error':
        this.#onSocketError(msg.error ?? {});
        return; // emitted by #onSocketError, to the subscription it names or to the client
      case 'pong':
        this.#attempt = 0;
        break;
      case 'overtaken':
        this.#notice(msg);
        return; // emitted by #notice, once
      default:
    }
    if (BOARD_MESSAGES.has(msg.type)) this.#onBoardMessage(msg, 'websocket');
    else this.emit(msg.type, msg);
  }

  // An `error` names the subscription it is about in `details`: a refused subscribe, or one the
  // server ended (its board retired), which may come between the answers to our subscribes. Only
  // a subscribe the server could not even read (VALIDATION_ERROR) is answered without a name:
  // that one is matched by order.
  #onSocketError(error) {
    const named = error.details && typeof error.details.channel === 'string' ? error.details : null;
    let sub = null;
    if (named) {
      sub = this.#answered(named.channel, named.board) ?? this.#subs.get(keyOf(named.channel, named.board));
    } else if (error.code === 'VALIDATION_ERROR') {
      sub = this.#pending.shift() ?? null;
    }
    if (!sub) this.emit('error', error);
    else if (!this.#links.has(sub)) return; // left or replaced meanwhile
    else if (this.#definitive(error)) this.#refuse(sub, error);
    else this.#links.get(sub).refused = true; // asked again once authenticated, or on the next socket
  }

  // Whether a refusal holds whatever the connection: the board is gone, the subscribe is wrong, or
  // it needs a user and the client has no token. Others are the connection's: UNAUTHORIZED before
  // the server took the token (or on a socket it then closes, 4401 or 4429), and the like.
  #definitive({ code }) {
    return code === 'BOARD_NOT_FOUND' || code === 'VALIDATION_ERROR' || (code === 'UNAUTHORIZED' && !this.#token);
  }

  #retryRefused() {
    for (const [sub, link] of this.#links) {
      if (!link.refused) continue;
      link.refused = false;
      this.#subscribeOnSocket(sub);
    }
  }

  // The oldest subscribe sent for this channel and board (or, the server naming the board it
  // gave, for this channel and no board), taken off the awaited ones.
  #answered(channel, board) {
    let at = this.#pending.findIndex((sub) => sub.key === keyOf(channel, board));
    if (at < 0) at = this.#pending.findIndex((sub) => sub.key === keyOf(channel, null));
    return at < 0 ? null : this.#pending.splice(at, 1)[0];
  }

  // ------------------------------------------------------------------ board channels, notices

  #onBoardMessage(msg, via, sub) {
    const data = msg.data && typeof msg.data === 'object' ? msg.data : null;
    if (!data) return;
    sub ??= this.#subs.get(keyOf(msg.type === 'ranks_update' ? data.channel : 'leaderboard', data.board));
    const link = sub && this.#links.get(sub);
    if (!link || link.awaiting) return;
    // A missed message (or a diff with no snapshot before it): apply nothing more until a fresh
    // snapshot, which subscribing again gives.
    const expected = link.seq === null ? null : link.seq + 1;
    const diff = msg.type === 'ranks_update' && !data.snapshot;
    if (expected === null ? diff : data.seq !== expected) {
      sub.emit('gap', { expected, got: data.seq });
      this.#resubscribe(sub, link);
      return;
    }
    link.seq = data.seq;
    sub.receive(msg, via);
    this.emit(msg.type, msg);
  }

  #resubscribe(sub, link) {
    if (this.#socketUp) {
      this.#subscribeOnSocket(sub);
    } else if (link.stream) {
      this.#closeStream(link);
      this.#openStream(sub, link);
    }
  }

  // A notice, live or replayed or polled: delivered once, and counted for the next replay.
  #notice(msg) {
    if (Number.isInteger(msg.id)) {
      if (this.#seen.has(msg.id)) return;
      this.#seen.add(msg.id);
      if (this.#seen.size > REMEMBERED_NOTICES) this.#seen.delete(this.#seen.values().next().value);
    }
    const sub = this.#subs.get(keyOf('notifications', null));
    // (A subscription still reading the newest id, `after: 'now'`, gets it from that read.)
    if (sub && sub.ready && Number.isInteger(msg.id)) sub.after = Math.max(sub.after ?? 0, msg.id);
    if (sub) sub.emit('notice', msg);
    this.emit(msg.type, msg);
  }

  // ------------------------------------------------------------------ the fallbacks

  #fallBack() {
    this.#degraded = true;
    for (const sub of this.#subs.values()) if (sub.ready) this.#fallBackOne(sub);
  }

  // A top goes on an event stream (again, after one failed); the rest, and a top without one, polls.
  #fallBackOne(sub) {
    const link = this.#links.get(sub);
    if (link.stream || link.resolving) return; // open, or reconnecting by itself; or finding its board
    if (sub.board === null && sub.channel !== 'notifications') {
      this.#findDefault(sub, link);
      return;
    }
    const streams = this.#transports.has('sse') && typeof EventSource === 'function';
    if (streams && sub.streamPath()) this.#openStream(sub, link);
    else this.#startPolling(sub, link);
  }

  // The routes have the board in their path: one asked for without a board reads which is the
  // default first (the first GET /boards lists), as long as the socket is down.
  async #findDefault(sub, link) {
    link.resolving = true;
    while (!this.#defaultBoard && this.#degraded && !this.#closed && this.#links.get(sub) === link) {
      const id = (await this.read('/boards'))?.boards?.[0]?.id;
      if (typeof id === 'string') this.#defaultBoard = id;
      else await new Promise((resolve) => setTimeout(resolve, this.#pollMs));
    }
    link.resolving = false;
    // The socket has it now, or it was left.
    if (!this.#degraded || this.#closed || this.#links.get(sub) !== link) return;
    if (sub.board === null) this.#settle(sub, this.#defaultBoard);
    if (this.#links.get(sub) === link) this.#fallBackOne(sub);
  }

  #leaveFallback(sub) {
    const link = this.#links.get(sub);
    if (!link) return;
    this.#closeStream(link);
    this.#stopPolling(link);
    link.seq = null;
  }

  #openStream(sub, link) {
    const es = new EventSource(this.#apiUrl(sub.streamPath()).href);
    Object.assign(link, { stream: es, streamServed: false, streamOpen: false, seq: null });
    const onEvent = (ev) => {
      const msg = link.stream === es && parse(ev.data);
      if (msg) this.#onBoardMessage(msg, 'sse', sub);
    };
    for (const type of STREAM_EVENTS) es.addEventListener(type, onEvent);
    es.onopen = () => {
      if (link.stream !== es) return;
      link.streamServed = link.streamOpen = true;
      this.#stopPolling(link);
      this.#report();
    };
    es.onerror = () => {
      if (link.stream !== es) return;
      link.streamOpen = false;
      // A stream that served reconnects by itself, sending the last id it saw as Last-Event-ID:
      // the server goes on from the next one with a fresh snapshot. One that never served, or that
      // the server refused (closed), has failed: the next failed socket attempt tries a new one.
      // Either way the subscription is polled until a stream is open again.
      if (es.readyState === EventSource.CLOSED || !link.streamServed) this.#closeStream(link);
      this.#startPolling(sub, link);
      this.#report();
    };
  }

  #closeStream(link) {
    if (link.stream) link.stream.close();
    Object.assign(link, { stream: null, streamOpen: false });
  }

  #startPolling(sub, link) {
    if (!this.#transports.has('polling') || link.polling) return;
    link.polling = true;
    this.#poll(sub, link);
  }

  #stopPolling(link) {
    clearTimeout(link.pollTimer);
    Object.assign(link, { polling: false, pollOk: false, pollGen: link.pollGen + 1 });
  }

  async #poll(sub, link) {
    const gen = link.pollGen;
    const path = sub.pollPath(this.#userId);
    // Nobody looks (a hidden tab): save the request.
    if (path && !(sub.personal && !this.#token) && !globalThis.document?.hidden) {
      const data = DOTS.test(this.#userId ?? '') && sub.channel === 'around'
        ? await this.#readAroundDots(sub, this.#userId)
        : await this.read(path, { auth: sub.channel === 'notifications' });
      if (gen !== link.pollGen) return; // left the fallback meanwhile
      link.pollOk = data !== null;
      if (data && sub.channel === 'notifications') for (const n of data.notifications ?? []) this.#notice(n);
      else if (data) sub.receivePolled(data);
    }
    if (gen !== link.pollGen) return;
    link.pollTimer = setTimeout(() => this.#poll(sub, link), this.#pollMs);
    this.#report();
  }

  // A user id of dots only (`.`, `..`) cannot be a path segment: URLs resolve it away, percent-
  // encoded too (WHATWG URL). That user's window is found by a lookup of their rank, then read.
  async #readAroundDots(sub, userId) {
    const board = boardPath(sub.board);
    const found = await this.#fetch(`${board}/lookup`, false, { userIds: [userId] });
    if (!found || !found.ok) return null;
    const rank = (found.data.entries ?? []).find((entry) => entry.userId === userId)?.rank;
    const { radius } = sub.params;
    const from = rank ? Math.max(1, rank - radius) : 1;
    const read = await this.read(`${board}/ranks?from=${from}&limit=${rank ? rank + radius - from + 1 : 1}`);
    return read && (rank ? read : { ...read, leaderboard: [] }); // off the board: no window, as GET /around
  }

  // ------------------------------------------------------------------ plumbing

  #apiUrl(path) {
    return new URL(`/api/v1${path}`, this.#url);
  }

  // {ok, data} or {ok: false, error} for an answer in the envelope, null when none came. A GET, or
  // a POST of `json`.
  async #fetch(path, auth, json) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    const headers = { Accept: 'application/json' };
    if (auth && this.#token) headers.Authorization = `Bearer ${this.#token}`;
    const post = json === undefined ? {} : { method: 'POST', body: JSON.stringify(json) };
    if (post.body) headers['Content-Type'] = 'application/json';
    try {
      const res = await fetch(this.#apiUrl(path), { headers, cache: 'no-store', signal: ctrl.signal, ...post });
      const body = await res.json();
      if (body && body.success && body.data && typeof body.data === 'object') return { ok: true, data: body.data };
      const error = body && body.error ? body.error : { code: `HTTP_${res.status}`, message: res.statusText };
      return { ok: false, error };
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  #report() {
    const state = this.state;
    const text = JSON.stringify(state);
    if (text === this.#state) return;
    this.#state = text;
    this.emit('state', state);
  }
}

function newLink() {
  // seq: of the last message applied (null: the next must be a snapshot); awaiting: `subscribed`;
  // refused: for now, by this socket; resolving: reading the default board; reading: the newest
  // notice's id; stream: the EventSource; streamServed: it opened once; poll*: the REST loop.
  return {
    seq: null,
    awaiting: false,
    refused: false,
    resolving: false,
    reading: null,
    stream: null,
    streamServed: false,
    streamOpen: false,
    polling: false,
    pollOk: false,
    pollGen: 0,
    pollTimer: 0,
  };
}

function keyOf(channel, board) {
  return `${channel} ${board ?? ''}`;
}

function boardPath(board) {
  return `/boards/${encodeURIComponent(board)}`;
}

function parse(raw) {
  try {
    const msg = JSON.parse(raw);
    return msg && typeof msg === 'object' && typeof msg.type === 'string' ? msg : null;
  } catch {
    return null; // not JSON: not ours
  }
}

// The user a JWT names (`sub`), read without checking it (the server does), so that the windows
// around the user can be polled before the socket ever said who it is.
function userOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

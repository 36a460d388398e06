// Scoreboard live view: keeps the server-rendered #board-body table in sync
// over a WebSocket, falling back to HTTP polling while the socket is down.
// No globals, no innerHTML: every server string goes through textContent.
(() => {
  'use strict';

  const root = document.getElementById('board');
  const tbody = document.getElementById('board-body');
  if (!root || !tbody) return;
  const stateEl = document.getElementById('conn-state');
  const updatedEl = document.getElementById('updated-at');
  const wsPath = root.dataset.wsPath || '/ws/scoreboard';
  const topUrl = root.dataset.topUrl || '';

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;
  // A server that drains closes with 1012 "service restart": another one serves already. Come back
  // at once, each page at a random moment within this window, so that the thousands of pages of one
  // server do not all reach the others in the same instant. 1001 "going away" is what servers
  // before the drain sent on shutdown.
  const RESTART_CODES = new Set([1001, 1012]);
  const RESTART_JITTER_MS = 1000;
  const STABLE_MS = 10000;          // a socket open this long counts as healthy
  const CONNECT_TIMEOUT_MS = 10000; // don't sit in CONNECTING forever
  const PING_MS = 25000;            // below typical proxy idle timeouts (30-60 s)
  const STALE_MS = 2 * PING_MS + 10000;
  const POLL_MS = 2000;
  const POLL_TIMEOUT_MS = 5000;
  const HIGHLIGHT_MS = 1600;        // keep in sync with the CSS flash animation

  const motionQuery = window.matchMedia ? window.matchMedia('(prefers-reduced-motion: reduce)') : null;
  const reducedMotion = () => Boolean(motionQuery && motionQuery.matches);

  // ---------------------------------------------------------------- rendering

  const flashTimers = new WeakMap();

  function setText(el, text) {
    // Skipping no-op writes avoids needless mutations (and screen reader chatter).
    if (el && el.textContent !== text) el.textContent = text;
  }

  function createRow(userId) {
    // Same structure as the server-rendered rows in index.html.
    const tr = document.createElement('tr');
    tr.dataset.userId = userId;
    tr.insertCell().className = 'col-rank';
    const player = tr.insertCell();
    player.className = 'col-player';
    const name = document.createElement('span');
    name.className = 'name';
    const change = document.createElement('span');
    change.className = 'change';
    change.hidden = true;
    player.append(name, change);
    tr.insertCell().className = 'col-score';
    return tr;
  }

  function emptyRow() {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    Object.assign(tr.insertCell(), { colSpan: 3, textContent: 'No scores yet' });
    return tr;
  }

  // Returns the badge text, or '' when the change is unknown or zero.
  function changeText(change) {
    if (typeof change === 'number' && Number.isFinite(change)) {
      change = (change > 0 ? '+' : '') + String(change);
    }
    if (typeof change !== 'string') return '';
    const text = change.trim();
    return /^[+-]?0*(\.0*)?$/.test(text) ? '' : text;
  }

  function showUpdated(iso) {
    if (!updatedEl || !iso) return;
    const when = new Date(iso);
    updatedEl.dateTime = String(iso);
    updatedEl.title = String(iso);
    setText(updatedEl, Number.isNaN(when.getTime()) ? String(iso) : when.toLocaleTimeString());
  }

  // Reconcile the table with `entries`, reusing <tr>s keyed by userId, and
  // animate moves with FLIP (First, Last, Invert, Play).
  function render(entries, updatedAt) {
    if (!Array.isArray(entries)) return;
    const animate = !reducedMotion();

    const rows = new Map();
    for (const tr of Array.from(tbody.rows)) {
      if (tr.dataset.userId !== undefined) rows.set(tr.dataset.userId, tr);
    }
    // First: visual positions, including any in-flight transform...
    const firstTop = new Map();
    for (const [id, tr] of rows) {
      if (animate) firstTop.set(id, tr.getBoundingClientRect().top);
      // ...then drop the transform so "Last" measures the real layout slot.
      tr.classList.remove('moving');
      tr.style.transform = '';
    }

    // Stable sort by rank; the server's order wins when ranks are missing.
    const list = entries
      .filter((e) => e && e.userId !== undefined && e.userId !== null)
      .sort((a, b) => (Number(a.rank) || 0) - (Number(b.rank) || 0));

    const next = [];
    const seen = new Set();
    const flashes = [];
    for (const entry of list) {
      const id = String(entry.userId);
      if (seen.has(id)) continue;
      seen.add(id);
      let tr = rows.get(id);
      const isNew = !tr;
      if (isNew) tr = createRow(id);

      const score = String(entry.score ?? '');
      if (isNew || tr.dataset.score !== score) flashes.push(tr);
      tr.dataset.score = score;

      const username = String(entry.username ?? id);
      const nameEl = tr.querySelector('.name');
      setText(tr.cells[0], String(entry.rank ?? next.length + 1));
      setText(nameEl, username);
      if (nameEl && nameEl.title !== username) nameEl.title = username;
      setText(tr.cells[2], score);

      const badge = tr.querySelector('.change');
      if (badge) {
        const text = changeText(entry.change); // polling has no `change`: no badge
        setText(badge, text);
        badge.hidden = !text;
        badge.classList.toggle('down', text.startsWith('-'));
      }
      next.push(tr);
    }

    for (const [id, tr] of rows) {
      if (!seen.has(id)) tr.remove();
    }
    const empty = tbody.querySelector('tr.empty');
    if (next.length && empty) empty.remove();
    if (!next.length && !empty) tbody.append(emptyRow());

    // Reorder with the minimum of moves; rows already in place stay put.
    next.forEach((tr, i) => {
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });

    // Last + Invert: put each moved row back where it visually was.
    const moved = [];
    if (animate) {
      for (const tr of next) {
        const top = firstTop.get(tr.dataset.userId);
        if (top === undefined) continue;
        const dy = top - tr.getBoundingClientRect().top;
        if (Math.abs(dy) < 1) continue;
        tr.style.transform = `translateY(${dy}px)`;
        moved.push(tr);
      }
    }
    for (const tr of flashes) tr.classList.remove('changed');
    // One forced reflow commits the inverted positions and restarts flashes.
    if (moved.length || flashes.length) void tbody.offsetHeight;
    // Play: let the CSS transition carry rows to their new slots.
    for (const tr of moved) {
      tr.classList.add('moving');
      tr.style.transform = '';
    }
    for (const tr of flashes) {
      tr.classList.add('changed');
      clearTimeout(flashTimers.get(tr));
      flashTimers.set(tr, setTimeout(() => tr.classList.remove('changed'), HIGHLIGHT_MS));
    }
    showUpdated(updatedAt);
  }

  tbody.addEventListener('transitionend', (ev) => {
    if (ev.propertyName === 'transform') ev.target.classList.remove('moving');
  });

  // --------------------------------------------------------- connection state

  let ws = null;
  let attempt = 0;
  let retryTimer = 0, retryAt = 0, connectTimer = 0, pingTimer = 0, stableTimer = 0;
  let lastMessageAt = 0;
  let polling = false, pollOk = false, pollTimer = 0;
  let pollGen = 0; // bumped on stop so late poll responses are discarded

  function setState(state, text) {
    if (!stateEl) return;
    if (stateEl.dataset.state !== state) stateEl.dataset.state = state;
    setText(stateEl, text);
  }

  function refreshState() {
    if (ws && ws.readyState === WebSocket.OPEN) {
      setState('live', 'Live');
    } else if (pollOk) {
      setState('polling', 'Offline — polling');
    } else if (retryTimer) {
      const secs = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
      setState('reconnecting', `Reconnecting in ${secs}s`);
    } else {
      setState('connecting', 'Connecting…');
    }
  }

  function wsUrl() {
    const url = new URL(wsPath, window.location.href);
    url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    let sock;
    try {
      sock = new WebSocket(wsUrl());
    } catch (err) {
      console.warn('scoreboard: cannot open WebSocket', err);
      socketDown();
      return;
    }
    ws = sock;
    refreshState();
    connectTimer = setTimeout(() => {
      if (sock.readyState === WebSocket.CONNECTING) sock.close();
    }, CONNECT_TIMEOUT_MS);

    sock.onopen = () => {
      clearTimeout(connectTimer);
      lastMessageAt = Date.now();
      stopPolling();
      send({ type: 'subscribe', channel: 'leaderboard' });
      pingTimer = setInterval(keepalive, PING_MS);
      stableTimer = setTimeout(() => { attempt = 0; }, STABLE_MS);
      refreshState();
    };
    sock.onmessage = (ev) => handleMessage(ev.data);
    sock.onclose = (ev) => socketDown(ev.code);
  }

  function keepalive() {
    // A half-open TCP connection never fires `close`; treat silence as death.
    if (Date.now() - lastMessageAt > STALE_MS) {
      const dead = ws;
      socketDown();
      if (dead) dead.close();
      return;
    }
    send({ type: 'ping' });
  }

  function socketDown(code) {
    if (ws) ws.onopen = ws.onmessage = ws.onclose = null; // ignore late events from it
    ws = null;
    clearTimeout(connectTimer);
    clearInterval(pingTimer);
    clearTimeout(stableTimer);
    clearTimeout(retryTimer);
    // A restart close of a socket that was serving us (attempt 0): reconnect at once, with jitter,
    // showing the last board meanwhile instead of polling. Only once in a row: a server that keeps
    // closing that way gets the backoff like any other failure.
    const restart = attempt === 0 && RESTART_CODES.has(code);
    // Full jitter: random delay in [0, min(cap, base * 2^attempt)).
    const span = restart ? RESTART_JITTER_MS : Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
    const delay = Math.random() * span;
    attempt = Math.min(attempt + 1, 16);
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    if (!restart) startPolling();
    refreshState();
  }

  function handleMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return; // not JSON (or binary): ignore
    }
    if (!msg || typeof msg !== 'object') return;
    lastMessageAt = Date.now();
    switch (msg.type) {
      case 'leaderboard_update':
        if (msg.data) render(msg.data.leaderboard, msg.data.updatedAt);
        attempt = 0;
        break;
      case 'subscribed':
      case 'pong':
        // Proof the server is really serving us. `connected` alone is not: a
        // server that greets then drops us must not cause a hot reconnect loop.
        attempt = 0;
        break;
      case 'error':
        console.warn('scoreboard: server error', msg.error);
        break;
      default: // `connected` and unknown types need no action
    }
  }

  // ------------------------------------------------------------------ polling

  function startPolling() {
    if (polling || !topUrl) return;
    polling = true;
    pollOnce();
  }

  function stopPolling() {
    polling = false;
    pollOk = false;
    pollGen += 1;
    clearTimeout(pollTimer);
  }

  async function pollOnce() {
    const gen = pollGen;
    let ok = pollOk;
    if (!document.hidden) { // nobody is looking: save the request
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), POLL_TIMEOUT_MS);
      ok = false;
      try {
        const res = await fetch(topUrl, {
          headers: { Accept: 'application/json' },
          cache: 'no-store',
          credentials: 'same-origin',
          signal: ctrl.signal,
        });
        const body = res.ok ? await res.json() : null;
        const data = body && body.success ? body.data : null;
        if (gen === pollGen && data && Array.isArray(data.leaderboard)) {
          render(data.leaderboard, data.updatedAt);
          ok = true;
        }
      } catch {
        // network still down; the next tick retries
      } finally {
        clearTimeout(timer);
      }
    }
    if (gen !== pollGen) return; // the socket came back meanwhile
    pollOk = ok;
    refreshState();
    pollTimer = setTimeout(pollOnce, POLL_MS);
  }

  // -------------------------------------------------------------------- start

  // The browser knows when the network is back: skip the rest of the backoff.
  window.addEventListener('online', () => { if (retryTimer) connect(); });

  showUpdated(updatedEl && updatedEl.getAttribute('datetime'));
  connect();
})();

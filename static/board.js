// Scoreboard live page: a tab per board, a period selector, and the server-rendered #board-body
// table kept live by the JavaScript client (scoreboard-client.js: WebSocket, else Server-Sent
// Events, else polling), with its ties explained and the period's player count. A signed-in viewer also sees the ranks around them (around-me.js) and a
// toast when someone passes them (toasts.js). No globals, no innerHTML: every server string goes
// through textContent.
import { AroundPanel } from './around-me.js';
import {
  TIE_TITLES, changeBadge, periodLabel, playersText, scoreText, tieLegend, tieReasons, updatedText,
} from './format.js';
import { ScoreboardClient } from './scoreboard-client.js';
import { Toasts } from './toasts.js';

// The viewer's user JWT, set in the page's session storage by the embedding game however it signs
// players in, or handed over in the URL fragment (#token=…: never sent to a server, and taken out of
// the address bar at once). `python run.py demo` prints such a link.
const TOKEN_KEY = 'scoreboard.token';
const HIGHLIGHT_MS = 1600;        // keep in sync with the CSS flash animation
const NOTE_MS = 60000;            // how long "Week … ended" stays up
const TOP_LIMIT = 10;
const AROUND_RADIUS = 3;
const CURRENT = 'current';
const CLOCK_MS = 60000;           // "Updated 10:31" gains its date when the viewer's day turns

function viewerToken() {
  try {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const handed = fragment.get('token');
    if (handed) {
      window.sessionStorage.setItem(TOKEN_KEY, handed);
      fragment.delete('token');
      const url = new URL(window.location.href);
      url.hash = fragment.toString();
      window.history.replaceState(window.history.state, '', url.href);
    }
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: an anonymous viewer
  }
}

function start() {
  const root = document.getElementById('board');
  const tbody = document.getElementById('board-body');
  if (!root || !tbody) return;
  const stateEl = document.getElementById('conn-state');
  const updatedEl = document.getElementById('updated-at');
  const tabsEl = document.getElementById('board-tabs');
  const titleEl = document.getElementById('board-title');
  const captionEl = document.getElementById('board-caption');
  const scoreHeadEl = document.getElementById('score-head');
  const periodSelect = document.getElementById('period-select');
  const noteEl = document.getElementById('period-note');
  const countEl = document.getElementById('player-count');
  const legendEl = document.getElementById('tie-legend');
  const legendTextEl = document.getElementById('tie-legend-text');
  const gameTitle = document.getElementById('game-title')?.textContent ?? 'Scoreboard';
  const client = new ScoreboardClient({ token: viewerToken() });

  const motionQuery = window.matchMedia ? window.matchMedia('(prefers-reduced-motion: reduce)') : null;
  const reducedMotion = () => Boolean(motionQuery && motionQuery.matches);

  // ------------------------------------------------------------------ the view

  // The boards by id, as the tabs name them: {id, title, format, order, period}.
  const boards = new Map();
  for (const link of tabsEl ? tabsEl.querySelectorAll('a[data-board]') : []) {
    boards.set(link.dataset.board, boardOf(link.dataset, link.textContent));
  }
  const defaultBoard = boards.keys().next().value;

  const view = {
    board: root.dataset.board,
    format: root.dataset.format,
    ascending: root.dataset.order === 'asc',
    currentPeriod: root.dataset.period, // the id of the board's current period, as last seen
    period: CURRENT,                    // what is shown: CURRENT (live) or a finished period's id
    total: null,                        // players in the period shown as last learnt; null: not since the view changed
    gen: 0,                             // bumped at every change of view: late answers are dropped
  };

  function boardOf(fields, title) {
    return {
      id: String(fields.id ?? fields.board),
      title: String(title ?? fields.title ?? ''),
      format: fields.format === 'duration_ms' ? 'duration_ms' : 'number',
      order: fields.order === 'asc' ? 'asc' : 'desc',
      period: String((fields.period && fields.period.id) ?? fields.period ?? ''),
    };
  }

  function live() {
    return view.period === CURRENT;
  }

  function boardUrl(board, tail) {
    return `/boards/${encodeURIComponent(board)}/${tail}`;
  }

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
    const tie = document.createElement('span');
    tie.className = 'tie';
    tie.hidden = true;
    tie.textContent = 'tie';
    player.append(name, change, tie);
    tr.insertCell().className = 'col-score';
    return tr;
  }

  function emptyRow(text) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    Object.assign(tr.insertCell(), { colSpan: 3, textContent: text });
    return tr;
  }

  // Another board or period: its rows are not the old ones moved, so start from an empty table.
  function clearTable(text) {
    tbody.replaceChildren(emptyRow(text));
    showTies([], []);
    showCount(null);
  }

  let updatedIso = null;

  function showUpdated(iso) {
    if (!updatedEl || !iso) return;
    updatedIso = iso;
    updatedEl.dateTime = String(iso);
    updatedEl.title = String(iso);
    setText(updatedEl, updatedText(iso));
  }

  // The count of the period shown; null: not known yet (an empty text until it is).
  function showCount(total) {
    const n = total === null ? null : Number(total);
    if (n !== null && !(Number.isInteger(n) && n >= 0)) return;
    view.total = n;
    setText(countEl, n === null ? '' : playersText(n));
  }

  // Mark the rows whose score another row shows too, and say under the table why they are in
  // this order: a screen reader hears the mark and the legend, not a colour.
  function showTies(rows, entries) {
    const reasons = tieReasons(entries);
    rows.forEach((tr, i) => {
      const badge = tr.querySelector('.tie');
      if (!badge) return;
      const title = reasons[i] ? TIE_TITLES[reasons[i]] : '';
      badge.hidden = !title;
      if (badge.title !== title) badge.title = title;
    });
    const legend = tieLegend(reasons);
    setText(legendTextEl, legend);
    if (legendEl) legendEl.hidden = !legend;
  }

  // Reconcile the table with `entries`, reusing <tr>s keyed by userId, and
  // animate moves with FLIP (First, Last, Invert, Play). `total`: the period's player count, when
  // the message has it (a polled top does not: the count shown stays).
  function render(entries, updatedAt, total) {
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
    const shown = [];
    const seen = new Set();
    const flashes = [];
    for (const entry of list) {
      const id = String(entry.userId);
      if (seen.has(id)) continue;
      seen.add(id);
      shown.push(entry);
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
      setText(tr.cells[2], scoreText(entry.score, view.format));

      const badge = tr.querySelector('.change');
      if (badge) {
        // Reads over HTTP have no `change`: no badge.
        const { text, better } = changeBadge(entry.change, entry.score, view.format, view.ascending);
        setText(badge, text);
        badge.hidden = !text;
        badge.classList.toggle('down', !better);
      }
      next.push(tr);
    }
    showTies(next, shown);
    if (total !== undefined && total !== null) showCount(total);

    for (const [id, tr] of rows) {
      if (!seen.has(id)) tr.remove();
    }
    const empty = tbody.querySelector('tr.empty');
    if (next.length && empty) empty.remove();
    if (!next.length) {
      if (empty) setText(empty.cells[0], 'No scores yet');
      else tbody.append(emptyRow('No scores yet'));
    }

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


  // --------------------------------------------------------------- HTTP reads

  // The `data` of a read below /api/v1, or null (network down, timeout, error answer).
  const getData = (path) => client.read(path);

  // ---------------------------------------------------------------- the tabs

  function markTabs() {
    if (!tabsEl) return;
    for (const link of tabsEl.querySelectorAll('a[data-board]')) {
      if (link.dataset.board === view.board) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  function tabLink(info) {
    const link = document.createElement('a');
    link.href = `/?board=${encodeURIComponent(info.id)}`;
    Object.assign(link.dataset, { board: info.id, format: info.format, order: info.order, period: info.period });
    link.textContent = info.title;
    const item = document.createElement('li');
    item.append(link);
    return item;
  }

  // Boards made or retired since the page was rendered: the tabs follow GET /boards.
  async function refreshBoards() {
    const data = await getData('/boards');
    if (!data || !Array.isArray(data.boards) || !tabsEl) return;
    const listed = data.boards.filter((b) => b && typeof b.id === 'string').map((b) => boardOf(b, b.title));
    if (!listed.length) return;
    const same = listed.length === boards.size && listed.every((b) => {
      const held = boards.get(b.id);
      return held && held.title === b.title && held.format === b.format && held.order === b.order;
    });
    boards.clear();
    for (const info of listed) boards.set(info.id, info);
    if (!same) {
      tabsEl.replaceChildren(...listed.map(tabLink));
      markTabs();
    }
  }

  if (tabsEl) {
    tabsEl.addEventListener('click', (ev) => {
      const link = ev.target instanceof Element ? ev.target.closest('a[data-board]') : null;
      // A new tab or window (modifier keys, middle button) is the browser's business.
      if (!link || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      showBoard(link.dataset.board, { push: true });
    });
  }

  window.addEventListener('popstate', () => {
    const asked = new URLSearchParams(window.location.search).get('board');
    showBoard(boards.has(asked) ? asked : defaultBoard, { push: false });
  });

  function showBoard(id, { push }) {
    const info = boards.get(id);
    if (!info) return;
    if (push) {
      const url = new URL(window.location.href);
      url.searchParams.set('board', id);
      url.hash = '';
      if (url.href !== window.location.href) window.history.pushState({ board: id }, '', url.href);
    }
    if (id === view.board && live()) return;
    const notice = document.getElementById('notice');
    if (notice) notice.remove(); // it spoke of the board asked for at load
    view.board = id;
    view.format = info.format;
    view.ascending = info.order === 'asc';
    view.currentPeriod = info.period;
    view.period = CURRENT;
    view.gen += 1;
    setText(titleEl, info.title);
    setText(captionEl, `Top 10 of ${info.title}`);
    setText(scoreHeadEl, info.format === 'duration_ms' ? 'Time' : 'Score');
    document.title = `${gameTitle} — ${info.title}`;
    markTabs();
    hideNote();
    clearTable('Loading…');
    resetPeriods();
    loadPeriods();
    follow();
    followAround();
  }

  // ---------------------------------------------------------- the period select

  function periodOption(value, text) {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = text;
    return option;
  }

  function resetPeriods() {
    if (!periodSelect) return;
    periodSelect.replaceChildren(periodOption(CURRENT, `Current · ${periodLabel(view.currentPeriod)}`));
    periodSelect.value = CURRENT;
    periodSelect.disabled = true;
  }

  // GET /periods lists the current period first, then the finished ones kept that have entries.
  async function loadPeriods() {
    if (!periodSelect) return;
    const board = view.board;
    const data = await getData(boardUrl(board, 'periods'));
    if (board !== view.board || !data || !Array.isArray(data.periods) || !data.periods.length) return;
    const [current, ...finished] = data.periods.filter((p) => p && typeof p.id === 'string');
    if (!current) return;
    // Until a live message or a read brings the count (a polled top has none).
    if (view.total === null && live()) showCount(current.entries);
    const options = [periodOption(CURRENT, `Current · ${periodLabel(current.id)}`)];
    for (const p of finished) {
      const previous = Boolean(p.endsAt) && p.endsAt === current.startsAt;
      options.push(periodOption(p.id, previous ? `Previous · ${periodLabel(p.id)}` : periodLabel(p.id)));
    }
    if (!live() && !finished.some((p) => p.id === view.period)) {
      options.push(periodOption(view.period, periodLabel(view.period))); // shown, though no longer listed
    }
    periodSelect.replaceChildren(...options);
    periodSelect.value = view.period;
    periodSelect.disabled = options.length < 2;
  }

  if (periodSelect) periodSelect.addEventListener('change', () => showPeriod(periodSelect.value));

  // A finished period is frozen: its top is read once (as a rank range, which has the period's
  // player count too) and live updates pause until CURRENT again.
  async function showPeriod(value) {
    if (value === view.period) return;
    view.period = value;
    view.gen += 1;
    hideNote();
    clearTable('Loading…');
    if (live()) {
      follow();
      loadPeriods(); // the count too, should the live top come by polling (which has none)
      return;
    }
    pause();
    refreshState();
    const gen = view.gen;
    const data = await getData(`${boardUrl(view.board, 'ranks')}?from=1&limit=${TOP_LIMIT}&period=${encodeURIComponent(value)}`);
    if (gen !== view.gen) return;
    if (data && Array.isArray(data.leaderboard)) render(data.leaderboard, data.updatedAt, data.total);
    else clearTable('This period cannot be shown');
  }

  // A new current period (seen in an update): the select's "Current" names it, the ended one joins.
  function periodTurned(id) {
    view.currentPeriod = id;
    const option = periodSelect && periodSelect.querySelector(`option[value="${CURRENT}"]`);
    if (option) setText(option, `Current · ${periodLabel(id)}`);
    loadPeriods();
  }

  let noteTimer = 0;

  function showNote(text) {
    if (!noteEl) return;
    setText(noteEl, text);
    noteEl.hidden = false;
    clearTimeout(noteTimer);
    noteTimer = setTimeout(hideNote, NOTE_MS);
  }

  function hideNote() {
    clearTimeout(noteTimer);
    if (noteEl) noteEl.hidden = true;
  }

  // ------------------------------------------------------------------ live

  let top = null; // the shown board's live top 10; null while a finished period is shown

  // Live updates of the shown board: one subscription at a time, the old board's left.
  function follow() {
    if (!live() || (top && top.board === view.board)) return;
    pause();
    const sub = (top = client.leaderboard(view.board));
    sub.on('update', (value) => {
      // Late updates of a board left, or of the live period while a finished one is shown.
      if (sub !== top || !live()) return;
      if (typeof value.period === 'string' && value.period !== view.currentPeriod) periodTurned(value.period);
      render(value.leaderboard, value.updatedAt, value.total);
    });
    sub.on('period_ended', (data) => {
      // The new period's (empty) snapshot follows at once.
      if (sub === top && live()) showNote(`${periodLabel(data.period)} ended`);
    });
    sub.on('error', (error) => console.warn('scoreboard: the board cannot be followed', error));
    refreshState();
  }

  function pause() {
    if (top) top.close();
    top = null;
  }

  function setState(state, text) {
    if (!stateEl) return;
    if (stateEl.dataset.state !== state) stateEl.dataset.state = state;
    setText(stateEl, text);
  }

  function refreshState() {
    const { status, transport, retryAt } = client.state;
    if (stateEl && stateEl.dataset.transport !== (transport ?? '')) stateEl.dataset.transport = transport ?? '';
    if (status === 'live' && !live()) setState('paused', 'Paused — past period');
    else if (transport === 'websocket') setState('live', 'Live');
    else if (transport === 'sse') setState('live', 'Live (event stream)');
    else if (transport === 'polling') setState('polling', 'Polling');
    else if (status === 'reconnecting') {
      setState('reconnecting', `Reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`);
    } else setState('connecting', 'Connecting…');
  }

  // ------------------------------------------------------- the signed-in viewer

  const around = AroundPanel.at(document.getElementById('around-me'), client, AROUND_RADIUS);
  const toasts = Toasts.at(document.getElementById('toasts'));
  if (client.userId) {
    client.notifications({ after: 'now' }); // what passes the viewer from now on, none missed across drops
  }
  client.on('overtaken', ({ data }) => {
    if (!toasts || !data || !data.by) return;
    const board = boards.get(data.board);
    const where = board ? board.title : data.board;
    const ranks = `you are #${data.newRank} now (#${data.previousRank} before)`;
    toasts.show(`${data.by.username} passed you on ${where}: ${ranks}`);
  });
  client.on('unauthorized', () => {
    // Expired or not accepted: forget it, the page goes on for an anonymous viewer.
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: nothing kept
    }
    if (around) around.hide();
  });

  function followAround() {
    if (around && client.userId) around.show(boards.get(view.board) || { id: view.board, format: view.format });
  }

  // -------------------------------------------------------------------- start

  client.on('state', refreshState);
  showUpdated(updatedEl && updatedEl.getAttribute('datetime'));
  setInterval(() => showUpdated(updatedIso), CLOCK_MS);
  markTabs();
  follow();
  followAround();
  client.connect();
  loadPeriods();
  refreshBoards();
}

start();

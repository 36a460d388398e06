// The live page's "around me" panel: the ranks around the signed-in viewer on the shown board, kept
// live by the client's `around` window (it follows the viewer as they climb or fall). Names are
// text, never markup.
import { periodLabel, scoreText } from './format.js';

export class AroundPanel {
  #section;
  #body;
  #note;
  #client;
  #radius;
  #sub = null;

  /** The panel in `section`, or null when the page has none. */
  static at(section, client, radius) {
    return section ? new AroundPanel(section, client, radius) : null;
  }

  constructor(section, client, radius) {
    this.#section = section;
    this.#body = section.querySelector('tbody');
    this.#note = section.querySelector('.around-note');
    this.#client = client;
    this.#radius = radius;
  }

  /** Follow the viewer on `board` ({id, format}), leaving the board followed before. */
  show(board) {
    if (this.#sub && this.#sub.board === board.id) return;
    this.hide();
    const sub = (this.#sub = this.#client.around(board.id, this.#radius));
    sub.on('update', (value) => {
      if (sub === this.#sub) this.#render(value, board.format);
    });
    sub.on('error', (error) => {
      console.warn('scoreboard: the ranks around you cannot be followed', error);
      if (sub === this.#sub) this.hide();
    });
    this.#body.replaceChildren();
    this.#note.textContent = 'Loading…';
    this.#section.hidden = false;
  }

  hide() {
    if (this.#sub) this.#sub.close();
    this.#sub = null;
    this.#section.hidden = true;
  }

  #render({ entries, total, period }, format) {
    const me = this.#client.userId;
    this.#body.replaceChildren(...entries.map((entry) => row(entry, format, entry.userId === me)));
    const mine = entries.find((entry) => entry.userId === me);
    this.#note.textContent = mine
      ? `You are #${mine.rank} of ${total} · ${periodLabel(period)}`
      : 'You are not on this board yet';
  }
}

function row(entry, format, mine) {
  const tr = document.createElement('tr');
  tr.dataset.userId = entry.userId;
  if (mine) {
    tr.className = 'me';
    tr.setAttribute('aria-current', 'true');
  }
  Object.assign(tr.insertCell(), { className: 'col-rank', textContent: String(entry.rank) });
  const name = document.createElement('span');
  Object.assign(name, { className: 'name', textContent: entry.username, title: entry.username });
  const player = tr.insertCell();
  player.className = 'col-player';
  player.append(name);
  Object.assign(tr.insertCell(), { className: 'col-score', textContent: scoreText(entry.score, format) });
  return tr;
}

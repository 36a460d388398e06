// Short messages in a corner of the page ("Ana passed you…"), read out politely by screen readers;
// a few at a time, the oldest giving way. A click dismisses one.
const LIFETIME_MS = 8000;
const MAX_SHOWN = 3;

export class Toasts {
  #container;

  /** Toasts in `container`, or null when the page has none. */
  static at(container) {
    return container ? new Toasts(container) : null;
  }

  constructor(container) {
    this.#container = container;
  }

  show(text) {
    const toast = document.createElement('p');
    toast.className = 'toast';
    toast.textContent = text;
    toast.addEventListener('click', () => toast.remove());
    this.#container.append(toast);
    while (this.#container.children.length > MAX_SHOWN) this.#container.firstElementChild.remove();
    setTimeout(() => toast.remove(), LIFETIME_MS);
  }
}

// How the page writes scores, score changes and period ids. The server renders the first view with
// the same rules (app/api/page.py): keep the two in step.

const pad = (n, width) => String(n).padStart(width, '0');

/** A time in milliseconds as m:ss.mmm, or h:mm:ss.mmm from one hour on (61234 -> "1:01.234"). */
export function durationText(ms) {
  const value = Number(ms);
  if (!Number.isFinite(value)) return String(ms ?? '');
  const sign = value < 0 ? '-' : '';
  const total = Math.trunc(Math.abs(value));
  const millis = total % 1000;
  const seconds = Math.floor(total / 1000);
  const secs = seconds % 60;
  const minutes = Math.floor(seconds / 60) % 60;
  const hours = Math.floor(seconds / 3600);
  const tail = `${pad(secs, 2)}.${pad(millis, 3)}`;
  return hours ? `${sign}${hours}:${pad(minutes, 2)}:${tail}` : `${sign}${minutes}:${tail}`;
}

/** A score as a board of this format ("number" or "duration_ms") shows it. */
export function scoreText(score, format) {
  if (format === 'duration_ms') return durationText(score);
  return String(score ?? '');
}

/** A period id as people read it: "Week 2026-W49", "Day 2026-12-02", "All time". */
export function periodLabel(id) {
  const text = String(id ?? '');
  if (text === 'all') return 'All time';
  if (/^[0-9]{4}-W[0-9]{2}$/.test(text)) return `Week ${text}`;
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text)) return `Day ${text}`;
  if (/^[0-9]{4}-[0-9]{2}$/.test(text)) return `Month ${text}`;
  const cron = /^([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})$/.exec(text);
  if (cron) return `Period from ${cron[1]} ${cron[2]}`;
  return text;
}

/** The badge of a score change ("+100"), or '' when the change is unknown or zero. */
export function changeText(change) {
  if (typeof change === 'number' && Number.isFinite(change)) {
    change = (change > 0 ? '+' : '') + String(change);
  }
  if (typeof change !== 'string') return '';
  const text = change.trim();
  return /^[+-]?0*(\.0*)?$/.test(text) ? '' : text;
}

/**
 * The badge of a live entry: its text ('' for none) and whether the change is for the better,
 * which on an ascending board (lowest first, such as times) is a fall. On a board of times the
 * change is a time too, and a first entry (its change is its whole score) is marked "new".
 */
export function changeBadge(change, score, format, ascending) {
  const text = changeText(change);
  const delta = Number(text);
  if (!text || !Number.isFinite(delta)) return { text, better: !text.startsWith('-') };
  const better = ascending ? delta < 0 : delta > 0;
  if (format !== 'duration_ms') return { text, better };
  if (delta === Number(score)) return { text: 'new', better: true };
  return { text: (delta > 0 ? '+' : '-') + durationText(Math.abs(delta)), better };
}

// How the page writes scores, score changes, period ids, ties, player counts and update times. The
// server renders the first view with the same rules (app/api/page.py): keep the two in step.

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

/** How many players a board period has: "1 player", "1,234 players" (grouped the viewer's way). */
export function playersText(total) {
  const n = Number(total);
  return n === 1 ? '1 player' : `${n.toLocaleString()} players`;
}

// Why one of two equal scores is ahead, as the server ranks them (app/ranking/ties.py): the subscore
// a trusted server may give, then who reached the score first.
export const TIE_FIRST = 'first';
export const TIE_SUBSCORE = 'subscore';
export const TIE_TITLES = {
  [TIE_FIRST]: 'Same score as the player next to them: whoever reached it first ranks higher',
  [TIE_SUBSCORE]: 'Same score as the player next to them: the game\'s tie-break decides, then who reached it first',
};
const TIE_LEGENDS = {
  [TIE_FIRST]: 'Same score: whoever reached it first ranks higher.',
  [TIE_SUBSCORE]: 'Same score: the game\'s tie-break decides, then whoever reached it first ranks higher.',
};

/**
 * For each entry of a top in rank order ({score, subscore?}): null when nobody else shown has its
 * score, else why the tied ones are in this order (TIE_FIRST, or TIE_SUBSCORE when their subscores
 * differ; an absent subscore counts as 0, as in the ranking).
 */
export function tieReasons(entries) {
  const reasons = entries.map(() => null);
  let start = 0;
  while (start < entries.length) {
    let end = start;
    while (end + 1 < entries.length && String(entries[end + 1].score) === String(entries[start].score)) end += 1;
    if (end > start) {
      const subscores = new Set(entries.slice(start, end + 1).map((e) => Number(e.subscore ?? 0)));
      reasons.fill(subscores.size === 1 ? TIE_FIRST : TIE_SUBSCORE, start, end + 1);
    }
    start = end + 1;
  }
  return reasons;
}

/** The line under the table that explains the ties shown, or '' when there are none. */
export function tieLegend(reasons) {
  if (reasons.includes(TIE_SUBSCORE)) return TIE_LEGENDS[TIE_SUBSCORE];
  return reasons.includes(TIE_FIRST) ? TIE_LEGENDS[TIE_FIRST] : '';
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/**
 * When a board last changed, in the viewer's locale and time zone: the time alone when that is
 * today (as of `now`), the date too when it is not. Not a date: the text as given.
 */
export function updatedText(iso, now = new Date()) {
  const when = new Date(iso);
  if (iso === null || iso === undefined || Number.isNaN(when.getTime())) return String(iso ?? '');
  if (sameDay(when, now)) return when.toLocaleTimeString();
  return when.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

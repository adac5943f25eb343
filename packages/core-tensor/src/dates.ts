import { SkySenseError } from './errors';

/** An acquisition date: a `Date`, an ISO string (`2021-07-14`, `2021-07-14T10:30:00Z`), or a day of year (1 … 366). */
export type AcquisitionDate = Date | string | number;

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/**
 * Day of year (1 = 1 January) of a date, in UTC. A day-of-year number must be an integer in
 * [1, 366]. @param what names the frame in error messages (e.g. `s2 frame 3 of sample 0`).
 * @throws SkySenseError `E_DATE` for an invalid date or day number.
 */
export function dayOfYear(date: AcquisitionDate, what = 'date'): number {
  if (typeof date === 'number') {
    if (!Number.isInteger(date) || date < 1 || date > 366)
      throw new SkySenseError('E_DATE', `${what}: day of year must be an integer in [1, 366], got ${date}`);
    return date;
  }
  const d = typeof date === 'string' ? parseIso(date, what) : date;
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new SkySenseError('E_DATE', `${what}: invalid date ${String(date)}`);
  return Math.floor((Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

function parseIso(s: string, what: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$/.exec(s.trim());
  if (!m) throw new SkySenseError('E_DATE', `${what}: expected an ISO date like 2021-07-14, got '${s}'`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const days = [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (mo < 1 || mo > 12 || d < 1 || d > days[mo - 1]!) throw new SkySenseError('E_DATE', `${what}: ${s} is not a calendar date`);
  return new Date(s.length === 10 ? `${s}T00:00:00Z` : s);
}

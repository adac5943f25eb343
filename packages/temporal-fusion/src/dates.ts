import { dayOfYear, type AcquisitionDate } from '@skysense/core-tensor';

/** Rows of the calendar table (`ctpe`): one per day of a non-leap year. */
export const CALENDAR_DAYS = 365;

/**
 * Row of the 365-row calendar table for a date: day of year − 1. Day 366 (31 December of a leap
 * year) has no row in the official table; it is clamped to row 364 (31 December), a documented
 * choice — the official loader does not guard it.
 */
export function calendarRow(date: AcquisitionDate, what = 'date'): number {
  return Math.min(dayOfYear(date, what), CALENDAR_DAYS) - 1;
}

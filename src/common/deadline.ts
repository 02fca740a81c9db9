/**
 * The package's timers: the one way it bounds a wait (a promise against a timer, the timer
 * cleared as soon as the promise settles, so a finished wait never holds the event loop) and
 * the one way it pauses.
 */

/** What {@link raceDeadline} resolves to when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol('timed out');

/** Longest delay setTimeout honours; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `promise`'s value, or {@link TIMED_OUT} once `ms` have passed first. Rejects when `promise`
 * rejects in time. `ref: false` lets the event loop end during the wait. `ms` below 0 (or NaN) counts as
 * 0 and above {@link MAX_TIMER_MS} as that (setTimeout would turn it into 1 ms).
 */
export function raceDeadline<T>(promise: Promise<T>, ms: number, { ref = true } = {}): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms > 0 ? Math.min(ms, MAX_TIMER_MS) : 0);
    if (!ref) timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A timer that keeps the event loop alive only while `ref` says so. */
export function sleep(ms: number, ref = true): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!ref) timer.unref();
  });
}

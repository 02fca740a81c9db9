/**
 * Signal names and numbers, defined once. Node's `os.constants.signals` lists aliases next to
 * the names (SIGIOT beside SIGABRT, SIGPOLL beside SIGIO): a number maps back to the name Node
 * itself reports for a child's exit (`signo_string` in node's src/util.cc), never to an alias.
 */
import { constants as osConstants } from 'node:os';
import { InvalidOptionError } from './errors.js';
import { describeValue } from './describe.js';

/** Second names of a signal number; Node reports the first name for that number. */
const ALIASES = new Set(['SIGIOT', 'SIGPOLL', 'SIGUNUSED', 'SIGCLD', 'SIGINFO', 'SIGLOST']);

/** Name → number, aliases included. A Map: os.constants.signals is a null-prototype object, slower to probe. */
const NUMBERS = new Map<string, number>(Object.entries(osConstants.signals));

const NAMES = new Map<number, NodeJS.Signals>();
for (const [name, num] of NUMBERS) {
  if (!ALIASES.has(name) && !NAMES.has(num)) NAMES.set(num, name as NodeJS.Signals);
}

/** Highest signal number the kernel knows (SIGRTMAX on Linux). */
const MAX_SIGNAL = 64;

/** The name of signal `signo` as Node reports it (`SIGABRT`, `SIGIO`), or `SIG<n>` for one without a name. */
export function signalName(signo: number): NodeJS.Signals {
  return NAMES.get(signo) ?? (`SIG${signo}` as NodeJS.Signals);
}

/** True when `name` is a signal name Node knows (exact spelling: `SIGTERM`, not `sigterm` or `TERM`). */
export function isSignalName(name: unknown): name is NodeJS.Signals {
  return typeof name === 'string' && NUMBERS.has(name);
}

/**
 * A signal name (`'SIGTERM'`), checked; throws an {@link InvalidOptionError} naming `option`
 * for anything else (a wrong spelling, a number, another type).
 */
export function requireSignalName(option: string, value: unknown): NodeJS.Signals {
  if (isSignalName(value)) return value;
  const hint =
    typeof value === 'string' && isSignalName(value.toUpperCase()) ? `; did you mean '${value.toUpperCase()}'?` : '';
  throw new InvalidOptionError(
    option,
    `${describeValue(value)} is not a signal name; use one Node knows, spelled as in os.constants.signals (e.g. 'SIGTERM')${hint}`,
  );
}

/**
 * The number of a signal given by name or number. A name must be one Node knows; a number an
 * integer from 0 (no signal: a liveness probe) to 64 (SIGRTMAX on Linux). Else an {@link InvalidOptionError}
 * naming `option`.
 */
export function signalNumber(signal: NodeJS.Signals | number, option = 'signal'): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 0 && signal <= MAX_SIGNAL) return signal;
    throw new InvalidOptionError(option, `${describeValue(signal)} is not a signal number (0..${MAX_SIGNAL})`);
  }
  return NUMBERS.get(requireSignalName(option, signal))!;
}

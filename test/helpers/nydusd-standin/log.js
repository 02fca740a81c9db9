'use strict';
/**
 * Logging as nydusd's flexi_logger does it (`[YYYY-MM-DD hh:mm:ss.uuuuuu +00:00] LEVEL msg`,
 * coloured on stderr, plain in --log-file), and the two ways the real process dies with a
 * message: a panic under panic=abort, and main() returning Err.
 */
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const LEVEL_NUM = { off: 0, error: 1, warn: 2, info: 3, debug: 4, trace: 5 };
const LEVEL_NAME = { 1: 'ERROR', 2: 'WARN', 3: 'INFO', 4: 'DEBUG', 5: 'TRACE' };
const LEVEL_COLOR = { 1: 196, 2: 208, 4: 27, 5: 8 }; // flexi_logger default palette
const log = {
  max: 3,
  ceiling: 5, // RUST_LOG seeds flexi_logger's spec (try_with_env_or_str("trace"))
  file: null, // --log-file target (opt_format, no colours)
};
/** flexi_logger's timestamp: UTC, microseconds, `+00:00`. */
function stamp() {
  const t = performance.timeOrigin + performance.now();
  const d = new Date(Math.floor(t));
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const micros = Math.floor((t - Math.floor(t / 1000) * 1000) * 1000);
  return (
    `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(micros, 6)} +00:00`
  );
}
/** Log msg at level, if enabled, to --log-file or (coloured but INFO) to stderr. */
function emit(level, msg, where) {
  const n = LEVEL_NUM[level];
  if (n > log.max || n > log.ceiling) return;
  const name = LEVEL_NAME[n];
  const ts = stamp();
  let line;
  if (log.file) {
    line = n === 3 ? `[${ts}] ${name} ${msg}` : `[${ts}] ${name} [${where}] ${msg}`;
    try {
      fs.appendFileSync(log.file, line + '\n');
    } catch {
      /* flexi_logger would report to stderr; ignore */
    }
    return;
  }
  const paint = (s) => (LEVEL_COLOR[n] ? `\x1b[38;5;${LEVEL_COLOR[n]}m${s}\x1b[0m` : s);
  line = n === 3 ? `[${ts}] ${name} ${msg}` : `[${paint(ts)}] ${paint(name)} [${where}] ${paint(msg)}`;
  writeStderr(line + '\n');
}
/** Write s to stderr synchronously, ignoring a closed stderr. */
function writeStderr(s) {
  try {
    fs.writeSync(2, s);
  } catch {
    /* stderr closed: nydusd would die of EPIPE-less silence too */
  }
}
const info = (m) => emit('info', m, '');
const warn = (m, w = 'src/bin/nydusd/main.rs:0') => emit('warn', m, w);
const error = (m, w = 'src/bin/nydusd/main.rs:0') => emit('error', m, w);
const debug = (m, w) => emit('debug', m, w);

/** Panic with panic=abort: log_panics writes the message at ERROR, then SIGABRT. */
function panicAbort(thread, msg, where) {
  error(`thread '${thread}' panicked at '${msg}', ${where}`, 'src/lib.rs:0');
  try {
    process.kill(process.pid, 'SIGABRT');
  } catch {
    process.exit(134);
  }
  // SIGABRT is asynchronous: make sure nothing else runs meanwhile.
  const until = Date.now() + 2000;
  while (Date.now() < until) {
    /* wait for the signal */
  }
  process.exit(134);
}

/** main() returning Err: Rust prints `Error: {:?}` and exits 1. */
function mainError(debugText) {
  writeStderr(`Error: ${debugText}\n`);
  process.exit(1);
}

module.exports = { LEVEL_NUM, log, writeStderr, info, warn, error, debug, panicAbort, mainError };

/**
 * The project's one line scanner for daemon output pipes, plus the parser
 * that maps each daemon's own log-line format to a log level.
 *
 * Why not `readline` / `bufio.Scanner`-style splitting: a daemon that prints a
 * huge line (or never prints a newline) must neither make us buffer without
 * bound nor make us stop reading (a full pipe blocks the daemon). Memory here
 * stays O(maxLineBytes) whatever the input.
 */
import { describeValue } from '../common/describe.js';
import { InvalidOptionError } from '../common/errors.js';

/** Per-line metadata passed to {@link LineScannerOptions.onLine}. */
export interface LineInfo {
  /** True when the line was longer than `maxLineBytes` and got cut (the marker is appended). */
  truncated: boolean;
  /** How many bytes of the line were dropped (0 unless `truncated`). */
  discardedBytes: number;
}

/** Options of {@link LineScanner}. */
export interface LineScannerOptions {
  /**
   * Called once per complete line, without its `\n` and without a trailing
   * `\r`. Invalid UTF-8 is replaced by U+FFFD. Called synchronously from
   * {@link LineScanner.push} / {@link LineScanner.end}; if it throws, the
   * exception propagates to that caller and the rest of that chunk is dropped
   * (the scanner itself stays consistent and usable).
   */
  onLine: (line: string, info: LineInfo) => void;
  /**
   * Maximum number of bytes kept per line (excluding `\n` and a trailing
   * `\r`). Longer lines are cut at the last UTF-8 character boundary at or
   * before this many bytes, the rest is counted but not stored, and the marker
   * from `truncationMarker` is appended. A positive integer; anything else makes the
   * constructor throw an {@link InvalidOptionError} for `maxLineBytes`.
   * @default 16384 (16 KiB)
   */
  maxLineBytes?: number;
  /**
   * Builds the text appended to a truncated line from the number of discarded
   * bytes.
   * @default `` n => ` …[truncated ${n} bytes]` ``
   */
  truncationMarker?: (discardedBytes: number) => string;
}

/** Default for {@link LineScannerOptions.maxLineBytes}. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

const LF = 0x0a;
const CR = 0x0d;

function defaultMarker(n: number): string {
  return ` …[truncated ${n} bytes]`;
}

/**
 * Length of the longest prefix of `buf[0, len)` that does not end inside a
 * UTF-8 multibyte sequence (only the last 1-3 bytes can be affected).
 */
function utf8SafeCut(buf: Buffer, len: number): number {
  let i = len - 1;
  const stop = Math.max(0, len - 4);
  while (i >= stop && (buf[i] & 0xc0) === 0x80) i--;
  if (i < 0 || i < stop) return len; // no lead byte nearby: nothing to fix
  const lead = buf[i];
  // 0xF8-0xFF never start a sequence (they decode to U+FFFD alone): keep them.
  const need = lead >= 0xf8 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i + need > len ? i : len;
}

/**
 * Splits a byte stream (e.g. a child's stderr pipe) into lines.
 *
 * - Splits on `\n`; strips one trailing `\r` (CRLF).
 * - Lines longer than `maxLineBytes` are cut on a UTF-8 boundary; the
 *   remaining bytes are only counted, so memory stays bounded by
 *   `maxLineBytes` even for an endless line without newline.
 * - Multibyte characters split across chunks decode correctly (bytes are
 *   joined before decoding); invalid UTF-8 becomes U+FFFD, never throws.
 * - {@link end} flushes a final line that has no newline.
 *
 * @example
 *   const sc = new LineScanner({ onLine: (l, i) => log(l, i.truncated) });
 *   child.stderr.on('data', (b) => sc.push(b)).on('end', () => sc.end());
 */
export class LineScanner {
  private readonly onLine: (line: string, info: LineInfo) => void;
  private readonly max: number;
  private readonly marker: (n: number) => string;
  /** Holds the (possibly cut) start of the current line; allocated lazily. */
  private buf: Buffer | null = null;
  /** Bytes of the current line held in `buf`. */
  private len = 0;
  /** Bytes of the current line beyond `max` that were counted but dropped. */
  private dropped = 0;
  /** True if any byte of the current (unterminated) line was seen. */
  private partial = false;
  /** Last byte seen of the current line (to strip a `\r` that was dropped). */
  private lastByte = -1;

  constructor(opts: LineScannerOptions) {
    const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new InvalidOptionError('maxLineBytes', `must be a positive integer, got ${describeValue(max)}`);
    }
    this.onLine = opts.onLine;
    this.max = max;
    this.marker = opts.truncationMarker ?? defaultMarker;
  }

  /** Feed the next chunk of raw bytes. */
  push(chunk: Buffer | Uint8Array): void {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const n = data.length;
    let pos = 0;
    while (pos < n) {
      const nl = data.indexOf(LF, pos);
      if (nl === -1) {
        this.append(data, pos, n);
        return;
      }
      if (!this.partial) {
        // Fast path: the whole line is inside this chunk, decode in place.
        let end = nl;
        if (end > pos && data[end - 1] === CR) end--;
        if (end - pos <= this.max) {
          const start = pos;
          pos = nl + 1; // advance first so a throwing onLine leaves us consistent
          this.onLine(data.toString('utf8', start, end), { truncated: false, discardedBytes: 0 });
          continue;
        }
      }
      this.append(data, pos, nl);
      pos = nl + 1;
      this.flushLine();
    }
  }

  /** Flush a final line that has no trailing newline, and reset the scanner. */
  end(): void {
    if (this.partial) this.flushLine();
  }

  private append(data: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.partial = true;
    this.lastByte = data[end - 1]!;
    if (this.dropped > 0) {
      this.dropped += end - start;
      return;
    }
    const room = this.max - this.len;
    const take = Math.min(room, end - start);
    if (take > 0) {
      if (this.buf === null) this.buf = Buffer.allocUnsafe(this.max);
      data.copy(this.buf, this.len, start, start + take);
      this.len += take;
    }
    this.dropped += end - start - take;
  }

  private flushLine(): void {
    let len = this.len;
    let dropped = this.dropped;
    if (this.lastByte === CR) {
      if (dropped > 0) dropped--;
      else len--;
    }
    if (dropped > 0 && this.buf !== null) {
      const cut = utf8SafeCut(this.buf, len);
      dropped += len - cut;
      len = cut;
    }
    const text = len > 0 && this.buf !== null ? this.buf.toString('utf8', 0, len) : '';
    this.len = 0;
    this.dropped = 0;
    this.partial = false;
    this.lastByte = -1;
    if (dropped > 0) {
      this.onLine(text + this.marker(dropped), { truncated: true, discardedBytes: dropped });
    } else {
      this.onLine(text, { truncated: false, discardedBytes: 0 });
    }
  }
}

/**
 * Levels produced by {@link parseDaemonLine}: pino's level names, so that a line can be logged at
 * its own level (`logger[level](msg)`). `fatal` is a Rust panic.
 */
export type DaemonLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Result of {@link parseDaemonLine}. */
export interface ParsedDaemonLine {
  /** The line's level: its own when the daemon writes one, else as {@link parseDaemonLine} infers it. */
  level: DaemonLogLevel;
  /** The message without the daemon's timestamp/level/module prefix and without ANSI colour codes. */
  msg: string;
}

const LEVELS: Record<string, DaemonLogLevel> = {
  ERROR: 'error',
  WARN: 'warn',
  INFO: 'info',
  DEBUG: 'debug',
  TRACE: 'trace',
};

// ANSI CSI / OSC escape sequences (flexi_logger colours non-INFO nydusd lines
// on stderr even when it is a pipe; env_logger does with RUST_LOG_STYLE=always).
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

/**
 * Rust virtiofsd (env_logger default format):
 *   `[2026-11-28T06:10:05Z INFO  virtiofsd] msg`
 *   `[2026-11-28T06:10:05Z WARN  virtiofsd::limits] msg`
 * The timestamp (any precision) and the module path are optional.
 */
const ENV_LOGGER_RE =
  /^\[(?:\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?\s+)?(ERROR|WARN|INFO|DEBUG|TRACE)(?:\s+[A-Za-z_][\w:-]*)?\s*\] ?(.*)$/s;

/**
 * nydusd (flexi_logger, `src/logger.rs` `colored_opt_format`/`opt_format`):
 *   `[2026-01-01 00:00:00.123456 +00:00] INFO msg`
 *   `[2026-01-01 00:00:00.123456 +00:00] WARN [/src/bin/nydusd/main.rs:123] msg`
 */
const NYDUS_RE =
  /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?: ?[+-]\d{2}:?\d{2}|Z)?\] (ERROR|WARN|INFO|DEBUG|TRACE) (?:\[[^\]\s]*:\d+\] )?(.*)$/s;

/**
 * Legacy C virtiofsd in debug mode (`-d`, `-o log_level=debug`) prefixes
 * `[2026-11-28 06:12:07.708291+0000] [ID: 00006512] ` (older QEMU: a bare
 * clock value `[123456789] ` or, with --syslog, only `[ID: …] `).
 * Otherwise C lines are plain: `virtio_session_mount: Waiting for …`.
 */
const C_DEBUG_PREFIX_RE = /^(?:\[[^\]]*\] )?\[ID: \d+\] /;

/** Rust panic message (`thread 'main' panicked at src/main.rs:1:2:`). */
const PANIC_RE = /^thread '[^']*' panicked at /;

/** C daemon / generic: words that start an error message (after an optional `func: `). */
const PLAIN_ERROR_RE = /^(?:fail(?:ed|ure)?|error|err|invalid|cannot|can't|unable|fatal)\b/i;
const PLAIN_FAILED_RE = /\bfailed\b/i;
const PLAIN_WARN_RE = /^warn(?:ing)?\b/i;
const FUNC_PREFIX_RE = /^[A-Za-z_][\w]*: /;

function classifyPlain(msg: string): DaemonLogLevel {
  // clap usage errors (Rust virtiofsd, nydusd): "error: unexpected argument …"
  if (msg.startsWith('error: ')) return 'error';
  if (PANIC_RE.test(msg)) return 'fatal';
  // libfuse option parser in C virtiofsd: "fuse: unknown option(s): `--x'",
  // "fuse: warning: …".
  if (msg.startsWith('fuse: ')) {
    return msg.startsWith('fuse: warning:') ? 'warn' : 'error';
  }
  const body = msg.replace(FUNC_PREFIX_RE, '');
  if (PLAIN_WARN_RE.test(body)) return 'warn';
  if (PLAIN_ERROR_RE.test(body) || PLAIN_FAILED_RE.test(body)) return 'error';
  return 'info';
}

/**
 * Maps one line of daemon output to a level and message.
 *
 * - Rust virtiofsd env_logger lines and nydusd flexi_logger lines carry their
 *   own level (ERROR/WARN/INFO/DEBUG/TRACE), which is used as is.
 * - Legacy C virtiofsd lines have no level: they are `info`, except libfuse
 *   option errors (`fuse: …` → error, `fuse: warning: …` → warn) and messages
 *   that plainly report a failure (`failed to stat source (…)`, `… failed`) → error.
 * - clap usage errors (`error: …`) → error; Rust panics → fatal.
 * - ANSI colour codes are removed from the message.
 */
export function parseDaemonLine(line: string): ParsedDaemonLine {
  const clean = line.includes('\x1b') ? line.replace(ANSI_RE, '') : line;
  let m = ENV_LOGGER_RE.exec(clean);
  if (m === null) m = NYDUS_RE.exec(clean);
  if (m !== null) {
    const msg = m[2];
    const level = LEVELS[m[1]];
    // nydusd routes panics through log_panics at ERROR level.
    return { level: level === 'error' && PANIC_RE.test(msg) ? 'fatal' : level, msg };
  }
  const msg = clean.replace(C_DEBUG_PREFIX_RE, '');
  return { level: classifyPlain(msg), msg };
}

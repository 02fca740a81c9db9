#!/usr/bin/env node
'use strict';
/**
 * nydusd-standin: a stand-in for `nydusd virtiofs`, for tests on hosts where nydusd cannot
 * be installed. It copies the real daemon's externally visible behaviour as closely as a
 * Node script can: the command line (clap 4), the log format (flexi_logger), the two
 * sockets, the state machine, and the administration API byte for byte on the wire
 * (dbs-uhttp server + nydus-api handlers + nydus-service mount logic).
 *
 * Sources it follows (dragonflyoss/nydus HEAD, read from git; kata pins v2.2.3):
 *   src/bin/nydusd/main.rs          command line, start-up order, rlimit, exit codes
 *   src/logger.rs                   `[YYYY-MM-DD hh:mm:ss.uuuuuu +00:00] LEVEL msg`
 *   service/src/daemon.rs           states, state machine, DaemonInfo, shutdown
 *   service/src/fs_service.rs       mount/umount/backend info, error values
 *   service/src/lib.rs              error texts, FsBackendType aliases
 *   src/bin/nydusd/virtiofs.rs      Listener::new(sock, unlink=true); RUNNING = bound
 *   api/src/http_handler.rs         routing, status codes, {"code":"UNDEFINED",...}
 *   api/src/http_endpoint_{v1,common}.rs   per-route method/body/query rules
 *   openanolis/dbs-uhttp            request parsing, 1 KiB line buffer, 50 KiB body cap,
 *                                   10 connections, response format
 *   fuse-backend-rs pseudo_fs.rs    mountpoint path walking
 * When the v1 OpenAPI yaml and the server code disagree, the server code wins (e.g.
 * prefetch_files is an array of strings; /daemon/backend needs ?mountpoint=).
 *
 * Usage (same as nydusd): nydusd-standin.js [global flags] virtiofs --sock P [flags]
 *   Global flags may also come after `virtiofs`: --apisock/-A, --config/-C, --id,
 *   --supervisor, --log-level/-l trace|debug|info|warn|error, --log-file/-L,
 *   --log-rotation-size, --rlimit-nofile, --upgrade. virtiofs flags: --sock,
 *   --hybrid-mode, --shared-dir/-s, --bootstrap/-B, --localfs-dir/-D, --prefetch-files,
 *   --virtual-mountpoint/-m. `--flag value`, `--flag=value`, `-lvalue`, `-l=value`.
 *   Bad command lines print a clap-style `error: ...` and exit 2. Only `virtiofs` is
 *   emulated; `fuse`/`singleton` exit 1 with an explanation.
 *
 * Test knobs (environment; the real nydusd ignores all of them):
 *   NYDUSD_STANDIN_RECORD=<file>   Append one JSON line per served /api/v1/mount request
 *                                  (any method, any outcome): {time, method, target,
 *                                  rawQuery, mountpoint (decoded as nydusd decodes it, or
 *                                  null), mountpointHex, body (utf-8, or null), bodyBase64,
 *                                  status, response}.
 *   NYDUSD_STANDIN_INIT_MS=<ms>    Stay INIT for ms before turning RUNNING (default 0).
 *                                  DEVIATION: the real nydusd in virtiofs mode opens the
 *                                  API socket only after it is RUNNING, so a client never
 *                                  sees INIT there. With INIT_MS > 0 the stand-in instead
 *                                  binds the API first (as some other nydusd modes/versions
 *                                  could) and answers state "INIT"; the vhost-user socket is
 *                                  bound at the INIT->RUNNING transition (RUNNING means
 *                                  "listener bound" in the real code). A WARN line says so.
 *   NYDUSD_STANDIN_NEVER_RUNNING=1 Like INIT_MS=infinity: API up, state INIT forever,
 *                                  --sock never bound.
 *   NYDUSD_STANDIN_EXIT_EARLY=<code>  Print an ERROR line and `Error: ...` and exit with
 *                                  <code> right after --sock is bound and before the API
 *                                  socket is bound (so the vhost-user socket is left
 *                                  behind, as when the real one fails to bind --apisock).
 *   NYDUSD_STANDIN_IGNORE_SIGTERM=1  Behave like the real nydusd in virtiofs mode with no
 *                                  VMM connected: SIGTERM/SIGINT (and PUT /daemon/exit)
 *                                  run the state machine to STOPPED and log it, but the
 *                                  process never exits (the real shutdown blocks on a mutex
 *                                  held by the vhost-user accept()); only SIGKILL ends it.
 *                                  As in the real one, later API calls that need the daemon
 *                                  object (GET /daemon, PUT /daemon/exit, ...) panic, and
 *                                  with panic=abort that is SIGABRT; mount calls still work.
 *                                  Default (unset): SIGTERM/SIGINT shut down gracefully,
 *                                  remove the API socket, keep the vhost-user socket, exit 0
 *                                  (what the real one does once its VMM has disconnected).
 *   NYDUSD_STANDIN_SLOW_MS=<ms>    Delay every API answer by ms. Requests are served one at
 *                                  a time, as by the real single HTTP thread, so one slow
 *                                  request delays all others.
 *   NYDUSD_STANDIN_STDERR_LINES=<n>  Log n extra INFO filler lines at start (output-draining
 *                                  tests).
 *   NYDUSD_STANDIN_VERSION=<vX.Y.Z>  The version `--version` and the start-up line report
 *                                  (default v2.2.3). Below v2.1.0 the stand-in speaks the
 *                                  command line of nydusd 1.x/2.0 (clap 2, no subcommands):
 *                                  `nydusd [--log-level L] [--apisock A] --sock S [...]` serves
 *                                  virtio-fs, and `virtiofs` is refused as clap 2 refuses an
 *                                  unexpected positional argument (exit 1).
 *   NODE_TEST_CONTEXT              Set by `node --test` when it runs this file as if it
 *                                  were a test (it lives under test/): with no command-line
 *                                  arguments the stand-in then exits 0 silently.
 *
 * Other deviations, all documented where they happen: after a request-parsing error the
 * connection is closed once the 400 is written (dbs-uhttp keeps it open with its parser in
 * an undefined state); RAFS bootstraps are only checked for existence, type and magic;
 * RAFS configs only for JSON shape; vhost-user connections are accepted and held but not
 * spoken to; duplicate JSON keys are not detected; serde error positions are approximate.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

/* ------------------------------------------------------------------ constants */

const BUILD = {
  package_ver: process.env.NYDUSD_STANDIN_VERSION || 'v2.2.3',
  git_commit: 'nydusd-standin',
  build_time: '2023-09-01T00:00:00.000000000Z',
  profile: 'release',
  rustc: 'rustc 1.68.2 (9eb3afe9e 2023-03-27)',
};
/** dbs-uhttp: per-connection read buffer; a request or header line must fit in it. */
const UHTTP_BUFFER = 1024;
/** dbs-uhttp MAX_PAYLOAD_SIZE (nydus never raises it). */
const UHTTP_MAX_PAYLOAD = 51200;
/** dbs-uhttp MAX_CONNECTIONS. */
const UHTTP_MAX_CONNECTIONS = 10;
const SERVER_FULL =
  'HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n' +
  '{ "error": "Too many open connections" }';
const SUN_PATH_MAX = 107; // Rust: bytes.len() >= sizeof(sun_path) (108) is an error

const env = process.env;
const knob = {
  record: env.NYDUSD_STANDIN_RECORD || '',
  initMs: Number(env.NYDUSD_STANDIN_INIT_MS || 0) || 0,
  neverRunning: env.NYDUSD_STANDIN_NEVER_RUNNING === '1',
  exitEarly: env.NYDUSD_STANDIN_EXIT_EARLY !== undefined && env.NYDUSD_STANDIN_EXIT_EARLY !== ''
    ? Number(env.NYDUSD_STANDIN_EXIT_EARLY) : null,
  ignoreSigterm: env.NYDUSD_STANDIN_IGNORE_SIGTERM === '1',
  slowMs: Number(env.NYDUSD_STANDIN_SLOW_MS || 0) || 0,
  stderrLines: Number(env.NYDUSD_STANDIN_STDERR_LINES || 0) || 0,
};

/* ------------------------------------------------------------------ Rust-isms */

/** Rust `{:?}` of a &str. */
function dbg(s) {
  let out = '"';
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/** errno -> [Rust io::ErrorKind Debug name, strerror text]. */
const ERRNO = {
  ENOENT: [2, 'NotFound', 'No such file or directory'],
  EACCES: [13, 'PermissionDenied', 'Permission denied'],
  EPERM: [1, 'PermissionDenied', 'Operation not permitted'],
  ENOTDIR: [20, 'NotADirectory', 'Not a directory'],
  EISDIR: [21, 'IsADirectory', 'Is a directory'],
  EINVAL: [22, 'InvalidInput', 'Invalid argument'],
  EADDRINUSE: [98, 'AddrInUse', 'Address already in use'],
  ENAMETOOLONG: [36, 'InvalidFilename', 'File name too long'],
  ELOOP: [40, 'FilesystemLoop', 'Too many levels of symbolic links'],
  EROFS: [30, 'ReadOnlyFilesystem', 'Read-only file system'],
  ENOSPC: [28, 'StorageFull', 'No space left on device'],
};
function errnoOf(e) {
  return (e && Object.hasOwn(ERRNO, e.code) && ERRNO[e.code]) || [5, 'Other', (e && e.message) || 'Input/output error'];
}
/** Rust io::Error Display for an OS error. */
function ioDisplay(e) {
  const [code, , text] = errnoOf(e);
  return `${text} (os error ${code})`;
}
/** Rust io::Error Debug for an OS error. */
function ioDebug(e) {
  const [code, kind, text] = errnoOf(e);
  return `Os { code: ${code}, kind: ${kind}, message: ${dbg(text)} }`;
}

/** Rust Duration Debug. */
function durDbg(ns) {
  const trim = (x) => String(x).replace(/\.?0+$/, '');
  if (ns >= 1e9) return `${trim((ns / 1e9).toFixed(9))}s`;
  if (ns >= 1e6) return `${trim((ns / 1e6).toFixed(6))}ms`;
  if (ns >= 1e3) return `${trim((ns / 1e3).toFixed(3))}µs`;
  return `${ns}ns`;
}

/* ------------------------------------------------------------------ logging */

const LEVEL_NUM = { off: 0, error: 1, warn: 2, info: 3, debug: 4, trace: 5 };
const LEVEL_NAME = { 1: 'ERROR', 2: 'WARN', 3: 'INFO', 4: 'DEBUG', 5: 'TRACE' };
const LEVEL_COLOR = { 1: 196, 2: 208, 4: 27, 5: 8 }; // flexi_logger default palette
const log = {
  max: 3,
  ceiling: 5, // RUST_LOG seeds flexi_logger's spec (try_with_env_or_str("trace"))
  file: null, // --log-file target (opt_format, no colours)
};
function stamp() {
  const t = performance.timeOrigin + performance.now();
  const d = new Date(Math.floor(t));
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const micros = Math.floor((t - Math.floor(t / 1000) * 1000) * 1000);
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(micros, 6)} +00:00`;
}
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
    } catch { /* flexi_logger would report to stderr; ignore */ }
    return;
  }
  const paint = (s) => (LEVEL_COLOR[n] ? `\x1b[38;5;${LEVEL_COLOR[n]}m${s}\x1b[0m` : s);
  line = n === 3
    ? `[${ts}] ${name} ${msg}`
    : `[${paint(ts)}] ${paint(name)} [${where}] ${paint(msg)}`;
  writeStderr(line + '\n');
}
function writeStderr(s) {
  try {
    fs.writeSync(2, s);
  } catch { /* stderr closed: nydusd would die of EPIPE-less silence too */ }
}
const info = (m) => emit('info', m, '');
const warn = (m, w = 'src/bin/nydusd/main.rs:0') => emit('warn', m, w);
const error = (m, w = 'src/bin/nydusd/main.rs:0') => emit('error', m, w);
const debug = (m, w) => emit('debug', m, w);

/* ------------------------------------------------------------------ clap */

class ClapError extends Error {
  constructor(msg, { usage = true, ctx } = {}) {
    super(msg);
    this.usage = usage;
    this.ctx = ctx;
  }
}
const USAGE = {
  top: 'Usage: nydusd [OPTIONS] --mountpoint <mountpoint> [COMMAND]',
  virtiofs: 'Usage: nydusd virtiofs [OPTIONS] --sock <sock>',
  fuse: 'Usage: nydusd fuse [OPTIONS] --mountpoint <mountpoint>',
  singleton: 'Usage: nydusd singleton [OPTIONS]',
};
const opt = (name, o = {}) => ({ name, long: name, ...o });
const GLOBAL_ARGS = [
  opt('apisock', { short: 'A' }),
  opt('config', { short: 'C' }),
  opt('id', { requires: 'supervisor' }),
  opt('log-level', { short: 'l', possible: ['trace', 'debug', 'info', 'warn', 'error'], def: 'info' }),
  opt('log-file', { short: 'L' }),
  opt('log-rotation-size', { def: '0' }),
  opt('rlimit-nofile', { def: '1000000' }),
  opt('supervisor', { requires: 'id' }),
  opt('upgrade', { flag: true }),
].map((a) => ({ ...a, global: true }));
const FS_ARGS = [
  opt('bootstrap', { short: 'B', conflicts: 'shared-dir' }),
  opt('localfs-dir', { short: 'D', conflicts: 'config' }),
  opt('shared-dir', { short: 's' }),
  opt('prefetch-files', { requires: 'bootstrap' }),
  opt('virtual-mountpoint', { short: 'm', def: '/' }),
];
const FUSE_ARGS = [
  opt('mountpoint', { short: 'M', required: true }),
  opt('failover-policy', { possible: ['resend', 'flush'], def: 'resend' }),
  opt('fuse-threads', { alias: 'thread-num', def: '4' }),
  opt('writable', { flag: true }),
];
const CONTEXTS = {
  top: [...GLOBAL_ARGS, ...FUSE_ARGS, ...FS_ARGS, opt('version', { short: 'V', flag: true, special: true })],
  virtiofs: [...GLOBAL_ARGS, opt('hybrid-mode', { flag: true }), opt('sock', { required: true }), ...FS_ARGS],
  fuse: [...GLOBAL_ARGS, ...FUSE_ARGS, ...FS_ARGS],
  singleton: [...GLOBAL_ARGS, opt('fscache', { short: 'F' }), opt('fscache-tag', { requires: 'fscache' }),
    opt('fscache-threads', { def: '4' })],
};
const SUBCOMMANDS = ['fuse', 'virtiofs', 'singleton', 'help'];
/** nydusd before 2.1.0: no subcommands; `--sock` on the one command line means virtio-fs. */
const FLAT = (() => {
  const m = /^v?(\d+)\.(\d+)/.exec(BUILD.package_ver);
  return m !== null && (Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 1));
})();
CONTEXTS.flat = [
  ...GLOBAL_ARGS.filter((a) => a.name !== 'log-rotation-size'),
  opt('sock', { required: true }), opt('hybrid-mode', { flag: true }), opt('thread-num', { def: '1' }),
  opt('failover-policy', { possible: ['resend', 'flush'], def: 'resend' }), opt('writable', { flag: true }),
  ...FS_ARGS.filter((a) => a.name !== 'localfs-dir'), opt('version', { short: 'V', flag: true, special: true }),
];
const argDisplay = (a) => (a.flag ? `--${a.long}` : `--${a.long} <${a.name}>`);

/** Parse argv as clap would for nydusd. Returns { sub, values: Map } or throws ClapError. */
function parseCommandLine(argv) {
  let ctx = FLAT ? 'flat' : 'top';
  const values = new Map(); // name -> value (string) or true for flags
  const given = new Map(); // name -> arg def, in order given
  let topSpecific = null; // a non-global top-level arg given before a subcommand
  let onlyPositional = false;
  const find = (pred) => CONTEXTS[ctx].find(pred);
  const setValue = (a, v) => {
    if (given.has(a.name)) {
      throw new ClapError(`the argument '${argDisplay(a)}' cannot be used multiple times`, { ctx });
    }
    if (a.possible && !a.possible.includes(v)) {
      throw new ClapError(
        `invalid value '${v}' for '${argDisplay(a)}'\n  [possible values: ${a.possible.join(', ')}]`,
        { usage: false, ctx });
    }
    given.set(a.name, a);
    values.set(a.name, v);
    if (ctx === 'top' && !a.global && !a.special) topSpecific = topSpecific || a;
  };
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (!onlyPositional && tok === '--') {
      onlyPositional = true;
      continue;
    }
    if (!onlyPositional && tok.startsWith('--') && tok.length > 2) {
      const eq = tok.indexOf('=');
      const name = eq < 0 ? tok.slice(2) : tok.slice(2, eq);
      const inline = eq < 0 ? undefined : tok.slice(eq + 1);
      if (name === 'help') return { help: ctx };
      const a = find((x) => x.long === name || x.alias === name);
      if (!a) throw new ClapError(`unexpected argument '--${name}' found`, { ctx });
      if (a.special) return { version: true };
      if (a.flag) {
        if (inline !== undefined) {
          throw new ClapError(`unexpected value '${inline}' for '--${a.long}' found; no more were expected`, { ctx });
        }
        setValue(a, true);
        continue;
      }
      let v = inline;
      if (v === undefined) {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('-') && next !== '-')) {
          throw new ClapError(`a value is required for '${argDisplay(a)}' but none was supplied`, { usage: false, ctx });
        }
        v = next;
        i++;
      }
      setValue(a, v);
      continue;
    }
    if (!onlyPositional && tok.startsWith('-') && tok.length > 1 && tok !== '--') {
      const s = tok[1];
      if (s === 'h') return { help: ctx };
      const a = find((x) => x.short === s);
      if (!a) throw new ClapError(`unexpected argument '-${s}' found`, { ctx });
      if (a.special) return { version: true };
      let rest = tok.slice(2);
      if (a.flag) {
        if (rest !== '') throw new ClapError(`unexpected argument '-${rest[0]}' found`, { ctx });
        setValue(a, true);
        continue;
      }
      if (rest.startsWith('=')) rest = rest.slice(1);
      let v = rest;
      if (tok.length === 2) {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('-') && next !== '-')) {
          throw new ClapError(`a value is required for '${argDisplay(a)}' but none was supplied`, { usage: false, ctx });
        }
        v = next;
        i++;
      }
      setValue(a, v);
      continue;
    }
    // A positional token: a subcommand name at top level, an error elsewhere.
    if (ctx === 'top' && !onlyPositional && SUBCOMMANDS.includes(tok)) {
      if (tok === 'help') return { help: argv[i + 1] && CONTEXTS[argv[i + 1]] ? argv[i + 1] : 'top' };
      if (topSpecific) {
        throw new ClapError(`the subcommand '${tok}' cannot be used with '${argDisplay(topSpecific)}'`, { ctx });
      }
      ctx = tok;
      continue;
    }
    if (ctx === 'flat') {
      // clap 2's wording and exit code (1) for a stray positional argument.
      writeStderr(`error: Found argument '${tok}' which wasn't expected, or isn't valid in this context\n\n` +
        'USAGE:\n    nydusd [FLAGS] [OPTIONS] --sock <sock>\n\nFor more information try --help\n');
      process.exit(1);
    }
    if (ctx === 'top') throw new ClapError(`unrecognized subcommand '${tok}'`, { ctx });
    throw new ClapError(`unexpected argument '${tok}' found`, { ctx });
  }
  // Relations and requirements, as clap checks them after parsing.
  for (const a of given.values()) {
    if (a.conflicts && given.has(a.conflicts)) {
      const b = CONTEXTS[ctx].find((x) => x.name === a.conflicts) || given.get(a.conflicts);
      throw new ClapError(`the argument '${argDisplay(a)}' cannot be used with '${argDisplay(b)}'`, { ctx });
    }
  }
  const missing = [];
  for (const a of CONTEXTS[ctx]) {
    if (a.required && !given.has(a.name)) missing.push(a);
  }
  for (const a of given.values()) {
    if (a.requires && !given.has(a.requires)) {
      const b = CONTEXTS[ctx].find((x) => x.name === a.requires);
      if (b && !missing.includes(b)) missing.push(b);
    }
  }
  if (missing.length) {
    throw new ClapError(
      `the following required arguments were not provided:\n${missing.map((a) => `  ${argDisplay(a)}`).join('\n')}`,
      { ctx });
  }
  for (const a of CONTEXTS[ctx]) {
    if (!values.has(a.name) && a.def !== undefined) values.set(a.name, a.def);
  }
  return { sub: ctx === 'top' ? null : ctx === 'flat' ? 'virtiofs' : ctx, values, given };
}

function clapFail(err) {
  let text = `error: ${err.message}\n`;
  if (err.usage) text += `\n${USAGE[err.ctx] || USAGE.top}\n`;
  text += `\nFor more information, try '--help'.\n`;
  writeStderr(text);
  process.exit(2);
}

function printHelp(ctx) {
  const args = CONTEXTS[ctx] || CONTEXTS.top;
  const lines = args.map((a) => `      ${a.short ? `-${a.short}, ` : '    '}${argDisplay(a)}`);
  const head = ctx === 'virtiofs'
    ? 'Run the Nydus daemon as a dedicated virtio-fs server (stand-in)'
    : 'Nydus daemon to provide BlobCache, FsCache, FUSE, Virtio-fs and container image services (stand-in)';
  let out = `${head}\n\n${USAGE[ctx] || USAGE.top}\n\n`;
  if (ctx === 'top') {
    out += 'Commands:\n  fuse       Run the Nydus daemon as a dedicated FUSE server\n' +
      '  virtiofs   Run the Nydus daemon as a dedicated virtio-fs server\n' +
      '  singleton  Run the Nydus daemon to host multiple blobcache/fscache/fuse/virtio-fs services\n' +
      '  help       Print this message or the help of the given subcommand(s)\n\n';
  }
  out += `Options:\n${lines.join('\n')}\n  -h, --help\n          Print help\n`;
  process.stdout.write(out);
  process.exit(0);
}

/** main() returning Err: Rust prints `Error: {:?}` and exits 1. */
function mainError(debugText) {
  writeStderr(`Error: ${debugText}\n`);
  process.exit(1);
}

/* ------------------------------------------------------------------ VFS model */

/** fuse-backend-rs PseudoFs + Vfs mountpoint table, enough to reproduce path walking. */
class PseudoFs {
  constructor() {
    this.next = 2;
    this.root = { ino: 1, parent: null, name: '/', children: new Map() };
    this.root.parent = this.root;
    this.mounts = new Map(); // ino -> backend
  }

  static components(p) {
    // Rust Path::components on a rooted path: RootDir, then Normal/ParentDir; `.` and empty
    // components vanish.
    return p.split('/').filter((c) => c !== '' && c !== '.');
  }

  /** path_walk: EINVAL without a root, null when a component is missing. */
  walk(p) {
    if (!p.startsWith('/')) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
    let node = this.root;
    for (const c of PseudoFs.components(p)) {
      if (c === '..') {
        node = node.parent;
        continue;
      }
      const child = node.children.get(c);
      if (!child) return null;
      node = child;
    }
    return node;
  }

  /** mount: creates the pseudo directories on the way. */
  mkpath(p) {
    if (!p.startsWith('/')) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
    let node = this.root;
    for (const c of PseudoFs.components(p)) {
      if (c === '..') {
        node = node.parent;
        continue;
      }
      let child = node.children.get(c);
      if (!child) {
        child = { ino: this.next++, parent: node, name: c, children: new Map() };
        node.children.set(c, child);
      }
      node = child;
    }
    return node;
  }
}

const vfs = new PseudoFs();
/** FsBackendCollection: keyed by the mountpoint string exactly as received. */
const backendCollection = new Map();

class MountError extends Error {
  /** @param kind Rust Debug of the DaemonErrorKind, e.g. `Other("...")` */
  constructor(kind) {
    super(kind);
    this.kind = kind;
  }
}
const other = (text) => new MountError(`Other(${dbg(text)})`);
const vfsPathWalkError = (e) =>
  other(`VFS failed to handle request, PathWalk(${ioDebug(e)})`);

function parseFsType(s) {
  if (s === 'rafs') return 'Rafs';
  if (s === 'passthrough' || s === 'passthroughfs' || s === 'passthrough_fs') return 'PassthroughFs';
  throw other(`invalid argument \`only 'rafs' and 'passthrough_fs' are supported, but ${s} was specified\``);
}

/** ConfigV2::from_str, approximated: JSON text shaped like a v2 or a v1 RAFS config. */
function parseRafsConfig(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
  const okV2 = isObj(v) && v.version === 2 && isObj(v.backend) && typeof v.backend.type === 'string';
  const okV1 = isObj(v) && isObj(v.device) && isObj(v.device.backend) && typeof v.device.backend.type === 'string';
  if (!okV2 && !okV1) {
    throw other('RAFS failed to handle request, Failed to load config: failed to parse configuration information`');
  }
  return v;
}

/** ConfigV2::clone_without_secrets, approximated. */
function withoutSecrets(cfg) {
  const SECRET = /^(auth|registry_token|access_key_id|access_key_secret|password|token|secret.*)$/i;
  const walk = (x) => {
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') {
      const o = {};
      for (const [k, val] of Object.entries(x)) o[k] = SECRET.test(k) ? (typeof val === 'string' ? '' : null) : walk(val);
      return o;
    }
    return x;
  };
  return walk(cfg);
}

function resolveSource(p) {
  // open("") is ENOENT, not the working directory.
  if (p === '') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return path.isAbsolute(p) ? p : path.resolve(process.cwd(), p);
}

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
  while (Date.now() < until) { /* wait for the signal */ }
  process.exit(134);
}

/** RafsSuper::load_from_file, approximated: the file must open and carry a RAFS v5/v6 magic. */
function checkBootstrap(source) {
  const fail = (io) => other(`RAFS failed to handle request, Failed to fill superBlock: ${io}\``);
  if (source.includes('\0')) throw fail('file name contained an unexpected NUL byte');
  let fd;
  try {
    fd = fs.openSync(resolveSource(source), 'r');
  } catch (e) {
    throw fail(ioDisplay(e));
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw fail(ioDisplay({ code: 'EISDIR' }));
    const buf = Buffer.alloc(1028);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const v5 = n >= 4 && buf.readUInt32LE(0) === 0x52414653; // "SFAR" on disk
    const v6 = n >= 1028 && buf.readUInt32LE(1024) === 0xe0f5e1e2; // EROFS superblock
    if (!v5 && !v6) throw fail(ioDisplay({ code: 'EINVAL' }));
  } finally {
    fs.closeSync(fd);
  }
}

/** PassthroughFs::new + import + Vfs::mount's root lookup. */
function checkPassthroughSource(source) {
  if (source.includes('\0')) {
    // CString::new(root_dir).expect(...) in PassthroughFs::import.
    panicAbort('api-server', `CString::new failed: NulError(${source.indexOf('\0')}, [...])`,
      '/fuse-backend-rs-0.11.0/src/passthrough/mod.rs:0:0');
  }
  let st;
  try {
    st = fs.lstatSync(resolveSource(source)); // open(O_PATH | O_NOFOLLOW)
  } catch (e) {
    throw other(`passthroughfs failed to handle request, ${ioDisplay(e)}`);
  }
  if (!st.isDirectory()) {
    // BackendFileSystem::mount looks up "." under the root fd: ENOTDIR for files/symlinks.
    throw other(`VFS failed to handle request, Mount(${ioDebug({ code: 'ENOTDIR' })})`);
  }
}

function validatePrefetch(list) {
  if (list == null) return;
  for (const p of list) {
    if (!p.startsWith('/')) throw other('invalid prefetch file list');
  }
}

function timeHumanReadable(d = new Date(), extraNanos = 0) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  let frac = String(d.getUTCMilliseconds() * 1e6 + extraNanos).padStart(9, '0').replace(/0+$/, '');
  if (frac === '') frac = '0';
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${frac} +00:00:00`;
}

/** FsService::mount. Throws MountError. */
function doMount(mountpoint, cmd) {
  const fsType = parseFsType(cmd.fs_type);
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  if (node && vfs.mounts.has(node.ino)) throw other('object or filesystem already exists');
  validatePrefetch(cmd.prefetch_files);
  let config = null;
  if (fsType === 'Rafs') {
    config = parseRafsConfig(cmd.config);
    checkBootstrap(cmd.source);
  } else {
    checkPassthroughSource(cmd.source);
  }
  info(fsType === 'Rafs' ? 'RAFS filesystem imported' : 'PassthroughFs imported');
  const target = vfs.mkpath(mountpoint); // over-mounts silently, as Vfs::mount does
  vfs.mounts.set(target.ino, { fsType, source: cmd.source, mountpoint });
  info(`${fsType} filesystem mounted at ${mountpoint}`);
  backendCollection.set(mountpoint, {
    backend_type: fsType,
    mountpoint,
    mounted_time: timeHumanReadable(new Date(), Math.floor(Math.random() * 1e6)),
    config: config === null ? null : withoutSecrets(config),
  });
}

/** FsService::remount (RAFS only). */
function doRemount(mountpoint, cmd) {
  const fsType = parseFsType(cmd.fs_type);
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  const m = node && vfs.mounts.get(node.ino);
  if (!m) throw other("object or filesystem doesn't exist");
  try {
    fs.accessSync(resolveSource(cmd.source), fs.constants.R_OK);
  } catch (e) {
    throw other(`RAFS failed to handle request, ${ioDisplay(e)}`);
  }
  if (m.fsType !== 'Rafs') throw other('filesystem type mismatch, expect RAFS');
  const config = parseRafsConfig(cmd.config);
  checkBootstrap(cmd.source);
  m.source = cmd.source;
  backendCollection.set(mountpoint, {
    backend_type: fsType,
    mountpoint,
    mounted_time: timeHumanReadable(),
    config: withoutSecrets(config),
  });
}

/** FsService::umount. */
function doUmount(mountpoint) {
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  if (!node || !vfs.mounts.has(node.ino)) throw other("object or filesystem doesn't exist");
  vfs.mounts.delete(node.ino);
  backendCollection.delete(mountpoint);
  debug('try to gc unused blobs', '/src/fs_service.rs:0');
}

/* ------------------------------------------------------------------ daemon state */

const daemon = {
  state: 'INIT', // DaemonState as GET /daemon reports it
  fsm: 'Init', // rust_fsm state: Init | Ready | Running | Die
  id: null,
  supervisor: null,
  taken: false, // DAEMON_CONTROLLER.shutdown() took the daemon object out
  shuttingDown: false,
};
function fsmLog(from, to, input, output) {
  info(`State machine(pid=${process.pid}): from ${from} to ${to}, input [${input}], output [${output}]`);
}
/** DaemonStateMachineInput handling, as in run_state_machine_event_loop. Returns an error text or null. */
function fsmEvent(input) {
  const table = {
    Init: { Mount: ['Ready', 'None'], Takeover: ['Ready', 'Some(Restore)'], Stop: ['Die', 'Some(StopStateMachine)'] },
    Ready: { Start: ['Running', 'Some(StartService)'], Stop: ['Die', 'Some(Umount)'], Exit: ['Die', 'Some(StopStateMachine)'] },
    Running: { Stop: ['Ready', 'Some(TerminateService)'] },
    Die: {},
  };
  const t = table[daemon.fsm][input];
  if (!t) {
    error(`Wrong event input. Event=${input}, CurrentState=${daemon.fsm}`, '/src/daemon.rs:0');
    return input;
  }
  fsmLog(daemon.fsm, t[0], input, t[1]);
  daemon.fsm = t[0];
  if (t[1] === 'Some(TerminateService)') daemon.state = 'READY';
  if (t[1] === 'Some(Umount)' || t[1] === 'Some(StopStateMachine)') daemon.state = 'STOPPED';
  if (daemon.state === 'STOPPED') info('state_machine thread exits');
  return null;
}
/** NydusDaemon::trigger_stop */
function triggerStop() {
  if (daemon.state === 'STOPPED') return;
  if (daemon.state === 'RUNNING') fsmEvent('Stop');
  fsmEvent('Stop');
}
/** NydusDaemon::trigger_exit */
function triggerExit() {
  if (daemon.state === 'STOPPED') return;
  if (daemon.state === 'INIT') {
    fsmEvent('Stop');
    return;
  }
  if (daemon.state === 'RUNNING') fsmEvent('Stop');
  fsmEvent('Exit');
}

function daemonInfoJson(includeFs) {
  let backend = null;
  if (includeFs) {
    backend = {};
    for (const [k, v] of backendCollection) backend[k] = v;
  }
  return JSON.stringify({
    version: BUILD,
    id: daemon.id,
    supervisor: daemon.supervisor,
    state: daemon.state,
    backend_collection: backend,
  });
}

/* ------------------------------------------------------------------ serde-ish bodies */

function serdeErr(msg, body, pos) {
  const text = body.toString('utf8');
  const upto = text.slice(0, pos === undefined ? text.length : pos);
  const line = upto.split('\n').length;
  const column = upto.length - (upto.lastIndexOf('\n') + 1);
  return `ParseBody(Error(${dbg(msg)}, line: ${line}, column: ${column}))`;
}
function serdeDesc(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'sequence';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'string') return `string ${dbg(v)}`;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (Number.isInteger(v)) return `integer \`${v}\``;
  return `floating point \`${v}\``;
}
/** serde_json::from_slice::<T>: returns { value } or { err } (HttpError Debug text). */
function parseJsonBody(body) {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { err: serdeErr('invalid unicode code point', body) };
  }
  const text = body.toString('utf8');
  if (text.trim() === '') return { err: serdeErr('EOF while parsing a value', body) };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const m = /position (\d+)/.exec(e.message);
    const pos = m ? Number(m[1]) + 1 : text.length;
    let msg = 'expected value';
    if (/Unexpected end of JSON input/.test(e.message)) msg = 'EOF while parsing a value';
    else if (/non-whitespace character after JSON/.test(e.message)) msg = 'trailing characters';
    else if (/property name/.test(e.message)) msg = 'key must be a string';
    else if (/after property value|after array element/.test(e.message)) msg = 'expected `,` or `}`';
    return { err: serdeErr(msg, body, pos) };
  }
}
/**
 * Deserialize a struct described by fields [{name, type: 'string'|'string?'|'strings?', required}]
 * the way serde derive does (maps by key, sequences by position).
 */
function deserializeStruct(body, structName, fields) {
  const r = parseJsonBody(body);
  if (r.err) return r;
  const v = r.value;
  const out = {};
  const typeCheck = (f, val) => {
    if (f.type === 'string') {
      if (typeof val !== 'string') return `invalid type: ${serdeDesc(val)}, expected a string`;
    } else if (f.type === 'strings?') {
      if (val === null) return null;
      if (!Array.isArray(val)) return `invalid type: ${serdeDesc(val)}, expected a sequence`;
      for (const x of val) if (typeof x !== 'string') return `invalid type: ${serdeDesc(x)}, expected a string`;
    }
    return null;
  };
  if (Array.isArray(v)) {
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (i >= v.length) {
        if (f.required) {
          return { err: serdeErr(`invalid length ${v.length}, expected struct ${structName} with ${fields.length} elements`, body) };
        }
        continue;
      }
      const e = typeCheck(f, v[i]);
      if (e) return { err: serdeErr(e, body) };
      out[f.name] = v[i];
    }
    if (v.length > fields.length) return { err: serdeErr('trailing characters', body) };
  } else if (v !== null && typeof v === 'object') {
    for (const [k, val] of Object.entries(v)) {
      const f = fields.find((x) => x.name === k);
      if (!f) continue; // unknown fields are ignored
      const e = typeCheck(f, val);
      if (e) return { err: serdeErr(e, body) };
      out[k] = val;
    }
    for (const f of fields) {
      if (f.required && !(f.name in out)) return { err: serdeErr(`missing field \`${f.name}\``, body) };
    }
  } else {
    return { err: serdeErr(`invalid type: ${serdeDesc(v)}, expected struct ${structName}`, body) };
  }
  for (const f of fields) {
    if (!(f.name in out) && f.def !== undefined) out[f.name] = f.def;
  }
  return { value: out };
}
const MOUNT_CMD_FIELDS = [
  { name: 'source', type: 'string', required: true },
  { name: 'fs_type', type: 'string', def: '' },
  { name: 'config', type: 'string', required: true },
  { name: 'prefetch_files', type: 'strings?', def: null },
];

/* ------------------------------------------------------------------ URI handling */

/** micro-http Uri::get_abs_path */
function absPath(uri) {
  if (uri.startsWith('http://')) {
    const rest = uri.slice(7);
    if (rest === '') return '';
    const i = rest.indexOf('/');
    return i < 0 ? '' : rest.slice(i);
  }
  return uri.startsWith('/') ? uri : '';
}
/** http 0.2 `parse::<Uri>()` of an origin-form target: returns { path, query } or an error text. */
function httpCrateParse(abs) {
  if (abs === '') return { err: 'empty string' };
  const okPath = (b) => b === 0x21 || (b >= 0x24 && b <= 0x3b) || b === 0x3d || (b >= 0x40 && b <= 0x5f) ||
    (b >= 0x61 && b <= 0x7a) || b === 0x7c || b === 0x7e || b === 0x22 || b === 0x7b || b === 0x7d;
  const okQuery = (b) => b === 0x21 || (b >= 0x24 && b <= 0x3b) || b === 0x3d || (b >= 0x3f && b <= 0x7e);
  const bytes = Buffer.from(abs, 'utf8');
  let q = -1;
  let end = bytes.length;
  let i = 0;
  for (; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x3f) {
      q = i;
      break;
    }
    if (b === 0x23) {
      end = i;
      break;
    }
    if (!okPath(b)) return { err: 'invalid uri character' };
  }
  if (q >= 0) {
    for (i = q + 1; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x23) {
        end = i;
        break;
      }
      if (!okQuery(b)) return { err: 'invalid uri character' };
    }
  }
  const pathEnd = q >= 0 ? q : end;
  return {
    path: bytes.subarray(0, pathEnd).toString('latin1'),
    query: q >= 0 ? bytes.subarray(q + 1, end).toString('latin1') : null,
  };
}
/** url::form_urlencoded::parse + into_owned (lossy UTF-8). */
function formPairs(query) {
  const out = [];
  if (query === null) return out;
  const dec = (s) => {
    const bytes = [];
    const raw = Buffer.from(s.replace(/\+/g, ' '), 'latin1');
    for (let i = 0; i < raw.length; i++) {
      const hex = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
      if (raw[i] === 0x25 && i + 2 < raw.length && hex(raw[i + 1]) && hex(raw[i + 2])) {
        bytes.push(parseInt(String.fromCharCode(raw[i + 1], raw[i + 2]), 16));
        i += 2;
      } else {
        bytes.push(raw[i]);
      }
    }
    return new TextDecoder('utf-8').decode(Buffer.from(bytes));
  };
  for (const piece of query.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const k = eq < 0 ? piece : piece.slice(0, eq);
    const v = eq < 0 ? '' : piece.slice(eq + 1);
    out.push([dec(k), dec(v)]);
  }
  return out;
}
function queryPart(query, key) {
  for (const [k, v] of formPairs(query)) if (k === key) return v;
  return null;
}

/* ------------------------------------------------------------------ HTTP handlers */

const METHOD_DEBUG = { GET: 'Get', HEAD: 'Head', POST: 'Post', PUT: 'Put', PATCH: 'Patch', DELETE: 'Delete' };
const STATUS_DEBUG = {
  200: 'OK', 204: 'NoContent', 400: 'BadRequest', 404: 'NotFound',
  500: 'InternalServerError', 501: 'NotImplemented', 503: 'ServiceUnavailable',
};
/** error_response(HttpError, status) */
const errResp = (status, httpErrorDebug) => ({
  status,
  body: JSON.stringify({ code: 'UNDEFINED', message: httpErrorDebug }),
});
const ok = (body) => (body === undefined || body === null ? { status: 204, body: null } : { status: 200, body });
/** translate_status_code for MountFilesystem/DaemonAbnormal kinds */
function kindStatus(kind) {
  if (kind === 'NotReady') return 503;
  if (kind === 'Unsupported') return 501;
  if (kind.startsWith('UnexpectedEvent(')) return 400;
  return 500;
}

/** The daemon object is gone after shutdown(): DAEMON_CONTROLLER.get_daemon() unwraps None. */
function needDaemon() {
  if (daemon.taken) {
    panicAbort('api-server', 'called `Option::unwrap()` on a `None` value', 'service/src/daemon.rs:0:0');
  }
}

const ROUTES = new Map();
const v1 = (p) => `/api/v1${p}`;
const methodBody = (req) => `${req.method}:${req.body ? 'body' : 'none'}`;
const BAD = { handlerErr: 'BadRequest' };

ROUTES.set(v1('/daemon'), (req) => {
  switch (methodBody(req)) {
    case 'GET:none':
      needDaemon();
      return ok(daemonInfoJson(true));
    case 'PUT:body': {
      const r = deserializeStruct(req.body, 'DaemonConf', [{ name: 'log_level', type: 'string', required: true }]);
      if (r.err) return { handlerErr: r.err };
      const lv = r.value.log_level.toLowerCase();
      if (!Object.hasOwn(LEVEL_NUM, lv)) {
        error(`Invalid log level passed, attempted to convert a string that doesn't match an existing log level`,
          'src/bin/nydusd/api_server_glue.rs:0');
        return errResp(500, 'Configure(ResponsePayloadType)');
      }
      log.max = LEVEL_NUM[lv];
      return ok();
    }
    default:
      return BAD;
  }
});
ROUTES.set(v1('/daemon/exit'), (req) => {
  if (methodBody(req) !== 'PUT:none') return BAD;
  needDaemon();
  triggerExit();
  info('exit daemon by http request');
  // kill(Pid::this(), SIGTERM): delivered after this answer is on its way.
  return { ...ok(), after: () => process.kill(process.pid, 'SIGTERM') };
});
ROUTES.set(v1('/daemon/start'), (req) => {
  if (methodBody(req) !== 'PUT:none') return BAD;
  needDaemon();
  const e = fsmEvent('Start');
  if (e) return errResp(400, `Configure(DaemonAbnormal(UnexpectedEvent(${dbg(e)})))`);
  return ok();
});
ROUTES.set(v1('/daemon/events'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  return ok(JSON.stringify({ max_errors: 1024, total_errors: 0, max_size: 1048576, errors: [] }));
});
ROUTES.set(v1('/daemon/backend'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  const mp = queryPart(req.query, 'mountpoint');
  if (mp === null) return { handlerErr: `QueryString(${dbg("'mountpoint' should be specified in query string")})` };
  let node;
  try {
    node = vfs.walk(mp);
  } catch (e) {
    return errResp(500, `FsBackendInfo(Metrics(Daemon(Other(${dbg(`VFS failed to handle request, PathWalk(${ioDebug(e)})`)}))))`);
  }
  const m = node && vfs.mounts.get(node.ino);
  if (!m) return errResp(500, `FsBackendInfo(Metrics(Daemon(Other(${dbg("object or filesystem doesn't exist")}))))`);
  if (m.fsType !== 'Rafs') return errResp(500, `FsBackendInfo(Metrics(Daemon(Other(${dbg('filesystem type mismatch, expect RAFS')}))))`);
  // serde_json::to_string(rafs.metadata()): the stand-in has no real superblock to show.
  return ok(JSON.stringify({ magic: 0x52414653, version: 0x500, sb_size: 8192, root_inode: 1, standin: true }));
});
for (const [p, name] of [['/daemon/fuse/sendfd', 'Upgrade'], ['/daemon/fuse/takeover', 'Upgrade'], ['/daemon/fuse/resend', 'Upgrade']]) {
  ROUTES.set(v1(p), (req) => {
    if (methodBody(req) !== 'PUT:none') return BAD;
    needDaemon();
    if (p.endsWith('takeover')) {
      const e = fsmEvent('Takeover');
      if (e) return errResp(400, `${name}(DaemonAbnormal(UnexpectedEvent(${dbg(e)})))`);
      return ok();
    }
    return errResp(501, `${name}(DaemonAbnormal(Unsupported))`);
  });
}
ROUTES.set(v1('/mount'), (req) => {
  // MountHandler extracts the query before looking at the method.
  const mountpoint = queryPart(req.query, 'mountpoint');
  if (mountpoint === null) {
    return { handlerErr: `QueryString(${dbg("'mountpoint' should be specified in query string")})`, mountpoint };
  }
  const mb = methodBody(req);
  const run = (fn) => {
    try {
      fn();
      return { ...ok(), mountpoint };
    } catch (e) {
      if (!(e instanceof MountError)) throw e;
      return { ...errResp(kindStatus(e.kind), `Mount(MountFilesystem(${e.kind}))`), mountpoint };
    }
  };
  if (mb === 'POST:body' || mb === 'PUT:body') {
    const r = deserializeStruct(req.body, 'ApiMountCmd', MOUNT_CMD_FIELDS);
    if (r.err) return { handlerErr: r.err, mountpoint };
    return run(() => (mb === 'POST:body' ? doMount(mountpoint, r.value) : doRemount(mountpoint, r.value)));
  }
  if (mb === 'DELETE:none') return run(() => doUmount(mountpoint));
  return { ...BAD, mountpoint };
});
const metricsRoute = (name, needsMount) => (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  const id = queryPart(req.query, 'id');
  const rafs = [...vfs.mounts.values()].filter((m) => m.fsType === 'Rafs');
  const hit = id === null ? rafs[0] : rafs.find((m) => m.mountpoint === id);
  if (!hit || !needsMount) return errResp(404, `${name}(Metrics(Stats(NoCounter)))`);
  return ok(JSON.stringify({ id: hit.mountpoint, standin: true }));
};
ROUTES.set(v1('/metrics'), metricsRoute('GlobalMetrics', true));
ROUTES.set(v1('/metrics/files'), metricsRoute('FsFilesMetrics', true));
ROUTES.set(v1('/metrics/pattern'), metricsRoute('Pattern', true));
ROUTES.set(v1('/metrics/backend'), metricsRoute('BackendMetrics', true));
ROUTES.set(v1('/metrics/blobcache'), metricsRoute('BlobcacheMetrics', true));
ROUTES.set(v1('/metrics/inflight'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  return errResp(500, 'InflightMetrics(Metrics(Daemon(Unsupported)))');
});
ROUTES.set('/api/v2/daemon', (req) => {
  if (methodBody(req) === 'GET:none') {
    needDaemon();
    return ok(daemonInfoJson(false));
  }
  if (methodBody(req) === 'PUT:body') return ROUTES.get(v1('/daemon'))(req);
  return BAD;
});
ROUTES.set('/api/v2/blobs', (req) => {
  if (req.method === 'GET' || req.method === 'PUT' || req.method === 'DELETE') {
    return errResp(501, 'GetBlobObjects(DaemonAbnormal(Unsupported))');
  }
  return BAD;
});

/** handle_http_request: returns { status, body, server, after, mountpoint } */
function handleHttpRequest(req) {
  const begin = process.hrtime.bigint();
  debug(`<--- ${METHOD_DEBUG[req.method]} Uri { string: ${dbg(req.uri)} }`, '/src/http_handler.rs:171');
  const parsed = httpCrateParse(absPath(req.uri));
  let res;
  if (parsed.err) {
    error(`Failed parse URI, ${parsed.err}`, '/src/http_handler.rs:200');
    res = errResp(400, 'BadRequest');
  } else {
    req.query = parsed.query;
    const route = ROUTES.get(parsed.path);
    if (!route) {
      res = errResp(404, 'NoRoute');
    } else {
      res = route(req);
      if (res.handlerErr) res = { ...errResp(400, res.handlerErr), mountpoint: res.mountpoint };
    }
    res.route = parsed.path;
  }
  const elapsed = Number(process.hrtime.bigint() - begin);
  debug(`---> ${METHOD_DEBUG[req.method]} Status Code: ${STATUS_DEBUG[res.status]}, Elapse: Ok(${durDbg(elapsed)}), ` +
    `Body Size: ${res.body ? Buffer.byteLength(res.body) : 0}`, '/src/http_handler.rs:181');
  return { ...res, server: 'Nydus API' };
}

/** Response::write_all */
function serializeResponse({ status, body, server, version = 'HTTP/1.1' }) {
  let head = `${version} ${status} \r\nServer: ${server}\r\nConnection: keep-alive\r\n`;
  const buf = body === null || body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
  if (buf.length !== 0) head += `Content-Type: application/json\r\nContent-Length: ${buf.length}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), buf]);
}
const parseErrorResponse = (inner) => serializeResponse({
  status: 400,
  server: 'Firecracker API',
  body: `{ "error": "${inner}\nAll previous unanswered requests will be dropped." }`,
});

function record(req, res) {
  if (!knob.record || res.route !== v1('/mount')) return;
  const mp = res.mountpoint === undefined ? null : res.mountpoint;
  const rec = {
    time: new Date().toISOString(),
    method: req.method,
    target: req.uri,
    rawQuery: req.query,
    mountpoint: mp,
    mountpointHex: mp === null ? null : Buffer.from(mp, 'utf8').toString('hex'),
    body: req.body ? req.body.toString('utf8') : null,
    bodyBase64: req.body ? req.body.toString('base64') : null,
    status: res.status,
    response: res.body,
  };
  try {
    fs.appendFileSync(knob.record, JSON.stringify(rec) + '\n');
  } catch (e) {
    warn(`stand-in: cannot append to NYDUSD_STANDIN_RECORD: ${e.message}`);
  }
}

/* ------------------------------------------------------------------ dbs-uhttp connection */

let serial = Promise.resolve();
/** The real server runs every request on one thread, in arrival order. */
function enqueue(fn) {
  serial = serial.then(fn).catch((e) => error(`stand-in internal error: ${e && e.stack}`));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const connections = new Set();

class RequestParseError extends Error {}
const HEADER_KEYS = ['content-length', 'content-type', 'expect', 'transfer-encoding', 'server', 'accept', 'accept-encoding'];

/** Parse one header line as Headers::parse_header_line; mutates req.headers. */
function parseHeaderLine(req, lineBuf) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(lineBuf);
  } catch {
    throw new RequestParseError('Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 sequence');
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw new RequestParseError(`Invalid header. Reason: Header is incorrectly formatted. Key: ${text}`);
  const rawName = text.slice(0, colon);
  const rawValue = text.slice(colon + 1);
  const name = rawName.trim().toLowerCase();
  const value = rawValue.trim();
  if (!HEADER_KEYS.includes(name)) return; // custom header: kept, unused
  switch (name) {
    case 'content-length':
      if (!/^\+?\d+$/.test(value) || Number(value) > 0xffffffff) {
        throw new RequestParseError(`Invalid header. Reason: Invalid value. Key:${rawName}; Value:${rawValue}`);
      }
      req.contentLength = Number(value);
      break;
    case 'transfer-encoding':
      if (value === 'chunked') req.chunked = true; // flagged, never decoded
      break;
    case 'expect':
      if (value === '100-continue') req.expect = true;
      break;
    case 'accept-encoding': {
      if (value === '') throw new RequestParseError('Invalid request.');
      for (const enc of value.split(',')) {
        const e = enc.trim();
        if (e === 'identity;q=0' || (e === '*;q=0' && !value.includes('identity'))) {
          throw new RequestParseError(`Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:${enc}`);
        }
      }
      break;
    }
    default:
      break; // content-type / accept with unsupported values are ignored
  }
}

function onConnection(sock) {
  if (connections.size >= UHTTP_MAX_CONNECTIONS) {
    sock.end(SERVER_FULL);
    sock.on('error', () => {});
    setTimeout(() => sock.destroy(), 100).unref();
    return;
  }
  connections.add(sock);
  const conn = { buf: Buffer.alloc(0), state: 'line', req: null, dead: false };
  const drop = () => {
    conn.dead = true;
    connections.delete(sock);
  };
  sock.on('error', drop);
  sock.on('close', drop);
  // A read-side hang-up closes the connection at once; queued answers are dropped.
  sock.on('end', () => {
    drop();
    sock.destroy();
  });
  const send = (bytes) => {
    if (!conn.dead && !sock.destroyed) sock.write(bytes);
  };
  const failParse = (msg) => {
    conn.state = 'failed';
    enqueue(async () => {
      if (knob.slowMs) await sleep(knob.slowMs);
      send(parseErrorResponse(msg));
      // DEVIATION: dbs-uhttp keeps the connection with a confused parser; close it instead.
      if (!conn.dead) sock.end();
    });
  };
  // A request or header line must fit, with its CRLF, in dbs-uhttp's 1024-byte buffer.
  const tooLong = () => new RequestParseError(conn.state === 'line'
    ? 'Invalid request.'
    : `Invalid header. Reason: Invalid content length. Header: ${conn.buf.subarray(0, UHTTP_BUFFER).toString('utf8')}`);
  const takeLine = () => {
    const i = conn.buf.indexOf('\r\n');
    if (i < 0) {
      if (conn.buf.length >= UHTTP_BUFFER) throw tooLong();
      return null;
    }
    if (i + 2 > UHTTP_BUFFER) throw tooLong();
    const line = conn.buf.subarray(0, i);
    conn.buf = conn.buf.subarray(i + 2);
    return line;
  };
  const parse = () => {
    for (;;) {
      if (conn.state === 'failed') return;
      if (conn.state === 'line') {
        const line = takeLine();
        if (line === null) return;
        const sp1 = line.indexOf(0x20);
        const sp2 = sp1 < 0 ? -1 : line.indexOf(0x20, sp1 + 1);
        if (sp1 < 0 || sp2 < 0) throw new RequestParseError('Invalid request.');
        const method = line.subarray(0, sp1).toString('latin1');
        const uriBytes = line.subarray(sp1 + 1, sp2);
        const version = line.subarray(sp2 + 1).toString('latin1');
        if (!Object.hasOwn(METHOD_DEBUG, method)) throw new RequestParseError('Invalid HTTP Method: Unsupported HTTP method.');
        if (uriBytes.length === 0) throw new RequestParseError('Invalid URI: Empty URI not allowed.');
        let uri;
        try {
          uri = new TextDecoder('utf-8', { fatal: true }).decode(uriBytes);
        } catch {
          throw new RequestParseError('Invalid URI: Cannot parse URI as UTF-8.');
        }
        if (version !== 'HTTP/1.0' && version !== 'HTTP/1.1') {
          throw new RequestParseError('Invalid HTTP Version: Unsupported HTTP version.');
        }
        conn.req = { method, uri, version, contentLength: 0, chunked: false, expect: false, body: null };
        conn.state = 'headers';
      } else if (conn.state === 'headers') {
        const line = takeLine();
        if (line === null) return;
        if (line.length === 0) {
          const req = conn.req;
          if (req.contentLength === 0) {
            conn.state = 'ready';
          } else {
            if (req.contentLength > UHTTP_MAX_PAYLOAD) {
              throw new RequestParseError(`Request payload with size ${req.contentLength} is larger than the limit of ` +
                `${UHTTP_MAX_PAYLOAD} allowed by server.`);
            }
            if (req.expect) {
              send(serializeResponse({ status: 100, server: 'Firecracker API', body: null, version: req.version }));
            }
            conn.state = 'body';
          }
        } else {
          parseHeaderLine(conn.req, line);
        }
      } else if (conn.state === 'body') {
        if (conn.buf.length < conn.req.contentLength) return;
        conn.req.body = Buffer.from(conn.buf.subarray(0, conn.req.contentLength));
        conn.buf = conn.buf.subarray(conn.req.contentLength);
        conn.state = 'ready';
      }
      if (conn.state === 'ready') {
        const req = conn.req;
        conn.req = null;
        conn.state = 'line';
        enqueue(async () => {
          if (knob.slowMs) await sleep(knob.slowMs);
          const res = handleHttpRequest(req);
          record(req, res);
          send(serializeResponse(res));
          if (res.after) {
            if (!conn.dead && !sock.destroyed) sock.write('', () => setImmediate(res.after));
            else setImmediate(res.after);
          }
        });
      }
    }
  };
  sock.on('data', (chunk) => {
    if (conn.state === 'failed') return;
    conn.buf = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
    try {
      parse();
    } catch (e) {
      if (!(e instanceof RequestParseError)) throw e;
      failParse(e.message);
    }
  });
}

/* ------------------------------------------------------------------ sockets */

function pathTooLong(p) {
  return Buffer.byteLength(p) > SUN_PATH_MAX;
}
/** Bind a listening unix socket; resolves with the server, rejects with the errno error. */
function listenUnix(p, onConn) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer({ allowHalfOpen: true }, onConn);
    srv.once('error', (e) => {
      // libuv turns bind()'s ENOENT (missing directory) into EACCES; nydusd reports the errno.
      if (e.code === 'EACCES') {
        try {
          fs.statSync(path.dirname(p));
        } catch (d) {
          if (d.code === 'ENOENT' || d.code === 'ENOTDIR') e = Object.assign(new Error(d.code), { code: d.code });
        }
      }
      reject(e);
    });
    srv.listen({ path: p, backlog: 511 }, () => {
      srv.removeListener('error', reject);
      srv.on('error', (e) => error(`listener error: ${e.message}`));
      resolve(srv);
    });
  });
}

let apiSockIno = null;
const vhostPeers = new Set();

/** vhost Listener::new(sock, unlink = true) + VhostUserDaemon::start */
async function bindVhostSocket(sock) {
  try {
    fs.unlinkSync(sock);
  } catch { /* remove_file errors are ignored */ }
  if (sock === '') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  if (pathTooLong(sock)) throw Object.assign(new Error('SUN_LEN'), { sunLen: true });
  // The listening server lives as long as the process: nothing needs a reference to it.
  await listenUnix(sock, (peer) => {
    // The stand-in cannot speak vhost-user: hold the connection open, as the real daemon
    // would while a front-end negotiates, but never answer.
    vhostPeers.add(peer);
    info('stand-in: vhost-user front-end connected (not served: the stand-in does not speak vhost-user)');
    peer.on('error', () => {});
    peer.on('close', () => vhostPeers.delete(peer));
    peer.resume();
  });
}

async function startApi(apisock) {
  try {
    fs.unlinkSync(apisock);
  } catch { /* ignored, as fs::remove_file(path) */ }
  if (pathTooLong(apisock)) {
    mainError('Error { kind: InvalidInput, message: "path must be shorter than SUN_LEN" }');
  }
  try {
    await listenUnix(apisock, onConnection);
  } catch (e) {
    mainError(ioDebug(e));
  }
  try {
    apiSockIno = fs.statSync(apisock).ino;
  } catch { /* raced away */ }
  info(`HTTP API server running at ${apisock}`);
  info('http server started');
}

function removeApiSocket(apisock) {
  if (!apisock || apiSockIno === null) return;
  try {
    if (fs.statSync(apisock).ino === apiSockIno) fs.unlinkSync(apisock);
  } catch { /* already gone */ }
}

/* ------------------------------------------------------------------ main */

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length === 0 && env.NODE_TEST_CONTEXT) process.exit(0); // picked up by `node --test test/`

  let cl;
  try {
    cl = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof ClapError) clapFail(e);
    throw e;
  }
  if (cl.help) printHelp(cl.help);
  if (cl.version) {
    const bti = `\rVersion: \t${BUILD.package_ver}\nGit Commit: \t${BUILD.git_commit}\nBuild Time: \t${BUILD.build_time}\n` +
      `Profile: \t${BUILD.profile}\nRustc: \t\t${BUILD.rustc}\n`;
    process.stdout.write(`nydusd ${bti}\n`);
    process.exit(0);
  }
  const val = (k) => cl.values.get(k);

  // setup_logging
  const rotation = FLAT ? '0' : val('log-rotation-size');
  if (!/^\d+$/.test(rotation)) {
    mainError(`Custom { kind: InvalidInput, error: ${dbg(`Invalid log rotation size: ${rotation === '' ? 'cannot parse integer from empty string' : 'invalid digit found in string'}`)} }`);
  }
  log.max = LEVEL_NUM[val('log-level')];
  if (env.RUST_LOG && Object.hasOwn(LEVEL_NUM, env.RUST_LOG.trim().toLowerCase())) {
    log.ceiling = LEVEL_NUM[env.RUST_LOG.trim().toLowerCase()];
  }
  if (val('log-file') !== undefined) {
    const p = val('log-file');
    const ext = path.extname(p);
    const stem = path.basename(p, ext);
    log.file = path.resolve(path.dirname(p), `${stem}.${ext ? ext.slice(1) : 'log'}`);
  }

  // register_signal_handler(SIGINT/SIGTERM, sig_exit)
  process.on('SIGTERM', () => onExitSignal(cl));
  process.on('SIGINT', () => onExitSignal(cl));

  info(`Program Version: ${BUILD.package_ver}, Git Commit: ${dbg(BUILD.git_commit)}, Build Time: ` +
    `${dbg(BUILD.build_time)}, Profile: ${dbg(BUILD.profile)}, Rustc Version: ${dbg(BUILD.rustc)}`);
  for (let i = 1; i <= knob.stderrLines; i++) info(`stand-in filler line ${i}/${knob.stderrLines}`);

  handleRlimit(val('rlimit-nofile'));

  if (cl.sub === null) {
    writeStderr('nydusd-standin: FUSE mode (no subcommand) is not emulated; use `virtiofs --sock <path>`\n');
    process.exit(1);
  }
  if (cl.sub !== 'virtiofs') {
    writeStderr(`nydusd-standin: the \`${cl.sub}\` subcommand is not emulated; only \`virtiofs\` is\n`);
    process.exit(1);
  }
  if (val('upgrade')) warn('stand-in: --upgrade has no effect in virtiofs mode');

  daemon.id = val('id') ?? null;
  daemon.supervisor = val('supervisor') ?? null;

  // process_fs_service: --shared-dir / --bootstrap become the first mount.
  let mountCmd = null;
  if (val('shared-dir') !== undefined) {
    mountCmd = { fs_type: 'passthrough_fs', source: val('shared-dir'), config: '', prefetch_files: null };
  } else if (val('bootstrap') !== undefined) {
    let config;
    if (val('localfs-dir') !== undefined) {
      config = JSON.stringify({
        device: {
          backend: { type: 'localfs', config: { dir: val('localfs-dir'), readahead: true } },
          cache: { type: 'blobcache', config: { compressed: false, work_dir: val('localfs-dir') } },
        },
        mode: 'direct', digest_validate: false, iostats_files: false,
      });
    } else if (val('config') !== undefined) {
      try {
        config = fs.readFileSync(val('config'), 'utf8');
      } catch (e) {
        mainError(ioDebug(e));
      }
    } else {
      mainError(`Custom { kind: InvalidInput, error: InvalidArguments(${dbg('both --config and --localfs-dir are missing')}) }`);
    }
    let prefetch = null;
    if (val('prefetch-files') !== undefined) {
      try {
        prefetch = fs.readFileSync(val('prefetch-files'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
      } catch {
        mainError(`Custom { kind: InvalidInput, error: InvalidArguments(${dbg('the prefetch-files arg is not a file path')}) }`);
      }
    }
    mountCmd = { fs_type: 'rafs', source: val('bootstrap'), config, prefetch_files: prefetch };
  }
  if (mountCmd) {
    try {
      doMount(val('virtual-mountpoint'), mountCmd);
    } catch (e) {
      if (!(e instanceof MountError)) throw e;
      const m = /^Other\("(.*)"\)$/s.exec(e.kind);
      mainError(`Custom { kind: InvalidInput, error: ${m ? `StartService(${dbg(m[1].replace(/\\"/g, '"'))})` : e.kind} }`);
    }
  }
  fsmEvent('Mount'); // Init -> Ready; DaemonState stays INIT until StartService

  const apisock = val('apisock');
  const sock = val('sock');
  const startService = async () => {
    fsmEvent('Start');
    try {
      await bindVhostSocket(sock);
    } catch (e) {
      const text = e.sunLen ? 'socket error: path must be shorter than SUN_LEN' : `socket error: ${ioDisplay(e)}`;
      mainError(`Custom { kind: Other, error: StartService(${dbg(text)}) }`);
    }
    if (!daemon.shuttingDown) daemon.state = 'RUNNING';
  };
  const exitEarly = () => {
    if (knob.exitEarly === null) return;
    error(`stand-in: NYDUSD_STANDIN_EXIT_EARLY=${knob.exitEarly}: exiting before the API socket is bound`);
    writeStderr(`Error: Custom { kind: Other, error: "nydusd-standin: exit requested by NYDUSD_STANDIN_EXIT_EARLY" }\n`);
    process.exit(knob.exitEarly);
  };

  if ((knob.initMs > 0 || knob.neverRunning) && apisock !== undefined) {
    warn(`stand-in: NYDUSD_STANDIN_${knob.neverRunning ? 'NEVER_RUNNING' : `INIT_MS=${knob.initMs}`}: the API is ` +
      'served while the daemon is still INIT; the real nydusd in virtiofs mode opens its API only once RUNNING');
    await startApi(apisock);
    if (knob.neverRunning) return;
    await sleep(knob.initMs);
    if (daemon.shuttingDown) return;
    await startService();
    exitEarly();
    return;
  }
  await startService();
  exitEarly();
  if (apisock !== undefined) await startApi(apisock);
}

/** handle_rlimit_nofile_option */
function handleRlimit(raw) {
  if (!/^\d+$/.test(raw) || BigInt(raw) > 18446744073709551615n) {
    mainError(`Custom { kind: InvalidInput, error: ${dbg('invalid value for option `rlimit-nofile`')} }`);
  }
  const want = Number(raw);
  if (want === 0) return;
  let fileMax;
  try {
    fileMax = Number(fs.readFileSync('/proc/sys/fs/file-max', 'utf8').trim());
  } catch (e) {
    mainError(ioDebug(e));
  }
  if (fileMax < 2 * 16384) {
    mainError(`Custom { kind: Other, error: ${dbg('The fs.file-max sysctl is too low to allow a reasonable number of open files.')} }`);
  }
  let soft = 1024;
  let hard = 1024;
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) {
      soft = m[1] === 'unlimited' ? Infinity : Number(m[1]);
      hard = m[2] === 'unlimited' ? Infinity : Number(m[2]);
    }
  } catch { /* keep defaults */ }
  let max = Math.min(fileMax - 16384, 1_000_000);
  if (soft >= max) max = soft;
  const value = Math.min(want, max);
  info(`Set rlimit-nofile to ${value}, maximum ${max}`);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  let nrOpen = 1048576;
  try {
    nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch { /* default */ }
  // setrlimit(NOFILE, value, value): raising the hard limit needs CAP_SYS_RESOURCE.
  if ((!root && value > hard) || value > nrOpen) {
    mainError(ioDebug({ code: 'EPERM' }));
  }
}

/** sig_exit -> DAEMON_CONTROLLER.shutdown() */
function onExitSignal(cl) {
  if (daemon.shuttingDown) return; // a second signal finds the daemon already taken
  daemon.shuttingDown = true;
  daemon.taken = true;
  triggerStop();
  if (knob.ignoreSigterm) {
    // d.wait() blocks on the VhostUserDaemon mutex held by the accept() of a front-end
    // that never comes: the real process stays here until SIGKILL.
    return;
  }
  info('nydusd quits');
  const apisock = cl.values.get('apisock');
  removeApiSocket(apisock);
  info('http-server thread exits');
  info('HTTP api-server handler thread exits');
  // The vhost-user socket is deliberately not closed (libuv would unlink it): nydusd
  // leaves it behind.
  process.exit(0);
}

main().catch((e) => {
  writeStderr(`nydusd-standin: internal error: ${e && e.stack}\n`);
  process.exit(70);
});

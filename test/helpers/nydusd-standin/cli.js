'use strict';
/**
 * The command line, as clap parses nydusd's: clap 4 with subcommands (`nydusd virtiofs --sock
 * ...`) from nydusd 2.1.0 on, and the flat clap 2 command line of nydusd 1.x/2.0 below it
 * (NYDUSD_STANDIN_VERSION); clap's error texts and exit codes, --help and --version.
 * Follows src/bin/nydusd/main.rs.
 */
const { BUILD } = require('./env');
const { writeStderr } = require('./log');

/** A command line clap refuses: its message, whether the usage line follows, and the context. */
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
/** An argument definition: `--name` plus short, flag, def, possible, requires, conflicts... */
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
  singleton: [
    ...GLOBAL_ARGS,
    opt('fscache', { short: 'F' }),
    opt('fscache-tag', { requires: 'fscache' }),
    opt('fscache-threads', { def: '4' }),
  ],
};
const SUBCOMMANDS = ['fuse', 'virtiofs', 'singleton', 'help'];
/** nydusd before 2.1.0: no subcommands; `--sock` on the one command line means virtio-fs. */
const FLAT = (() => {
  const m = /^v?(\d+)\.(\d+)/.exec(BUILD.package_ver);
  return m !== null && (Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 1));
})();
CONTEXTS.flat = [
  ...GLOBAL_ARGS.filter((a) => a.name !== 'log-rotation-size'),
  opt('sock', { required: true }),
  opt('hybrid-mode', { flag: true }),
  opt('thread-num', { def: '1' }),
  opt('failover-policy', { possible: ['resend', 'flush'], def: 'resend' }),
  opt('writable', { flag: true }),
  ...FS_ARGS.filter((a) => a.name !== 'localfs-dir'),
  opt('version', { short: 'V', flag: true, special: true }),
];
/** How clap names an argument in its errors: `--name` or `--name <name>`. */
const argDisplay = (a) => (a.flag ? `--${a.long}` : `--${a.long} <${a.name}>`);

/** Parse argv as clap does: { sub, values, given }, or { help: ctx } / { version: true }; throws ClapError. */
function parseCommandLine(argv) {
  const p = {
    argv,
    i: 0, // the token being read
    ctx: FLAT ? 'flat' : 'top',
    values: new Map(), // name -> value (string) or true for flags
    given: new Map(), // name -> arg def, in order given
    topSpecific: null, // a non-global top-level arg given before a subcommand
    onlyPositional: false, // after `--`
  };
  for (; p.i < argv.length; p.i++) {
    const early = takeToken(p);
    if (early) return early;
  }
  checkConflicts(p);
  checkRequired(p);
  applyDefaults(p);
  return { sub: p.ctx === 'top' ? null : p.ctx === 'flat' ? 'virtiofs' : p.ctx, values: p.values, given: p.given };
}

/** Read argv[p.i] (and its value); returns { help } or { version } to stop parsing, else null. */
function takeToken(p) {
  const tok = p.argv[p.i];
  if (!p.onlyPositional && tok === '--') {
    p.onlyPositional = true;
    return null;
  }
  if (!p.onlyPositional && tok.startsWith('--') && tok.length > 2) return takeLong(p, tok);
  if (!p.onlyPositional && tok.startsWith('-') && tok.length > 1 && tok !== '--') return takeShort(p, tok);
  return takePositional(p, tok);
}

/** The argument definition of the current context that matches, or undefined. */
function findArg(p, pred) {
  return CONTEXTS[p.ctx].find(pred);
}

/** Record a's value v, refusing a repeat and a value outside a's possible values. */
function setValue(p, a, v) {
  if (p.given.has(a.name)) {
    throw new ClapError(`the argument '${argDisplay(a)}' cannot be used multiple times`, { ctx: p.ctx });
  }
  if (a.possible && !a.possible.includes(v)) {
    throw new ClapError(`invalid value '${v}' for '${argDisplay(a)}'\n  [possible values: ${a.possible.join(', ')}]`, {
      usage: false,
      ctx: p.ctx,
    });
  }
  p.given.set(a.name, a);
  p.values.set(a.name, v);
  if (p.ctx === 'top' && !a.global && !a.special) p.topSpecific = p.topSpecific || a;
}

/** The next token as a's value (consumed), unless it is missing or looks like a flag. */
function nextValue(p, a) {
  const next = p.argv[p.i + 1];
  if (next === undefined || (next.startsWith('-') && next !== '-')) {
    throw new ClapError(`a value is required for '${argDisplay(a)}' but none was supplied`, {
      usage: false,
      ctx: p.ctx,
    });
  }
  p.i++;
  return next;
}

/** `--name`, `--name value` or `--name=value`. */
function takeLong(p, tok) {
  const eq = tok.indexOf('=');
  const name = eq < 0 ? tok.slice(2) : tok.slice(2, eq);
  const inline = eq < 0 ? undefined : tok.slice(eq + 1);
  if (name === 'help') return { help: p.ctx };
  const a = findArg(p, (x) => x.long === name || x.alias === name);
  if (!a) throw new ClapError(`unexpected argument '--${name}' found`, { ctx: p.ctx });
  if (a.special) return { version: true };
  if (a.flag) {
    if (inline !== undefined) {
      throw new ClapError(`unexpected value '${inline}' for '--${a.long}' found; no more were expected`, {
        ctx: p.ctx,
      });
    }
    setValue(p, a, true);
    return null;
  }
  setValue(p, a, inline === undefined ? nextValue(p, a) : inline);
  return null;
}

/** `-x`, `-x value`, `-xvalue` or `-x=value`. */
function takeShort(p, tok) {
  const s = tok[1];
  if (s === 'h') return { help: p.ctx };
  const a = findArg(p, (x) => x.short === s);
  if (!a) throw new ClapError(`unexpected argument '-${s}' found`, { ctx: p.ctx });
  if (a.special) return { version: true };
  let rest = tok.slice(2);
  if (a.flag) {
    if (rest !== '') throw new ClapError(`unexpected argument '-${rest[0]}' found`, { ctx: p.ctx });
    setValue(p, a, true);
    return null;
  }
  if (rest.startsWith('=')) rest = rest.slice(1);
  setValue(p, a, tok.length === 2 ? nextValue(p, a) : rest);
  return null;
}

/** A positional token: a subcommand name at top level, an error elsewhere. */
function takePositional(p, tok) {
  if (p.ctx === 'top' && !p.onlyPositional && SUBCOMMANDS.includes(tok)) return enterSubcommand(p, tok);
  if (p.ctx === 'flat') refuseClap2Positional(tok);
  if (p.ctx === 'top') throw new ClapError(`unrecognized subcommand '${tok}'`, { ctx: p.ctx });
  throw new ClapError(`unexpected argument '${tok}' found`, { ctx: p.ctx });
}

/** Switch to subcommand tok's arguments (or answer `help [sub]`); refused after a top-level-only arg. */
function enterSubcommand(p, tok) {
  const after = p.argv[p.i + 1];
  if (tok === 'help') return { help: after && CONTEXTS[after] ? after : 'top' };
  if (p.topSpecific) {
    throw new ClapError(`the subcommand '${tok}' cannot be used with '${argDisplay(p.topSpecific)}'`, { ctx: p.ctx });
  }
  p.ctx = tok;
  return null;
}

/** clap 2's wording and exit code (1) for a stray positional argument: never returns. */
function refuseClap2Positional(tok) {
  writeStderr(
    `error: Found argument '${tok}' which wasn't expected, or isn't valid in this context\n\n` +
      'USAGE:\n    nydusd [FLAGS] [OPTIONS] --sock <sock>\n\nFor more information try --help\n',
  );
  process.exit(1);
}

/** Refuse two given arguments that conflict, as clap checks after parsing. */
function checkConflicts(p) {
  for (const a of p.given.values()) {
    if (a.conflicts && p.given.has(a.conflicts)) {
      const b = findArg(p, (x) => x.name === a.conflicts) || p.given.get(a.conflicts);
      throw new ClapError(`the argument '${argDisplay(a)}' cannot be used with '${argDisplay(b)}'`, { ctx: p.ctx });
    }
  }
}

/** Refuse, in one error, the required arguments missing and those a given one requires. */
function checkRequired(p) {
  const missing = [];
  for (const a of CONTEXTS[p.ctx]) {
    if (a.required && !p.given.has(a.name)) missing.push(a);
  }
  for (const a of p.given.values()) {
    if (a.requires && !p.given.has(a.requires)) {
      const b = findArg(p, (x) => x.name === a.requires);
      if (b && !missing.includes(b)) missing.push(b);
    }
  }
  if (missing.length) {
    throw new ClapError(
      `the following required arguments were not provided:\n${missing.map((a) => `  ${argDisplay(a)}`).join('\n')}`,
      { ctx: p.ctx },
    );
  }
}

/** Fill in the default of every argument not given. */
function applyDefaults(p) {
  for (const a of CONTEXTS[p.ctx]) {
    if (!p.values.has(a.name) && a.def !== undefined) p.values.set(a.name, a.def);
  }
}

/** Print a clap 4 error (with the context's usage line when it has one) and exit 2. */
function clapFail(err) {
  let text = `error: ${err.message}\n`;
  if (err.usage) text += `\n${USAGE[err.ctx] || USAGE.top}\n`;
  text += `\nFor more information, try '--help'.\n`;
  writeStderr(text);
  process.exit(2);
}

/** Print the --help of context ctx and exit 0. */
function printHelp(ctx) {
  const args = CONTEXTS[ctx] || CONTEXTS.top;
  const lines = args.map((a) => `      ${a.short ? `-${a.short}, ` : '    '}${argDisplay(a)}`);
  const head =
    ctx === 'virtiofs'
      ? 'Run the Nydus daemon as a dedicated virtio-fs server (stand-in)'
      : 'Nydus daemon to provide BlobCache, FsCache, FUSE, Virtio-fs and container image services (stand-in)';
  let out = `${head}\n\n${USAGE[ctx] || USAGE.top}\n\n`;
  if (ctx === 'top') {
    out +=
      'Commands:\n  fuse       Run the Nydus daemon as a dedicated FUSE server\n' +
      '  virtiofs   Run the Nydus daemon as a dedicated virtio-fs server\n' +
      '  singleton  Run the Nydus daemon to host multiple blobcache/fscache/fuse/virtio-fs services\n' +
      '  help       Print this message or the help of the given subcommand(s)\n\n';
  }
  out += `Options:\n${lines.join('\n')}\n  -h, --help\n          Print help\n`;
  process.stdout.write(out);
  process.exit(0);
}

/** Print --version's build information as nydusd does and exit 0. */
function printVersion() {
  const bti =
    `\rVersion: \t${BUILD.package_ver}\nGit Commit: \t${BUILD.git_commit}\nBuild Time: \t${BUILD.build_time}\n` +
    `Profile: \t${BUILD.profile}\nRustc: \t\t${BUILD.rustc}\n`;
  process.stdout.write(`nydusd ${bti}\n`);
  process.exit(0);
}

module.exports = { ClapError, FLAT, parseCommandLine, clapFail, printHelp, printVersion };

'use strict';
/**
 * What the benchmark's processes share: where things are, the library (with the addon loaded
 * from the run's private copy), /proc readings, memory ballast, statistics.
 */
const cp = require('node:child_process');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** The run's private directory (sockets, helper copies), set by index.js for its workers. */
const runDir = process.env.BENCH_RUN_DIR || '';
/** The helper binaries of this run (copies, so that a concurrent `node-gyp rebuild` cannot pull them away). */
const binDir = process.env.BENCH_BIN_DIR || path.join(root, 'build', 'helpers');

/**
 * The compiled library (dist/) of this checkout, or of the checkout at `from`. When index.js made a private copy of the addon (BENCH_ADDON),
 * `bindings` is answered from that copy: `node-gyp rebuild` empties build/ while it runs.
 */
function lib(from = root) {
  const addon = process.env.BENCH_ADDON;
  if (from !== root) {
    // Another checkout (bench/density.js's BENCH_BEFORE): its own dist/ and its own addon, in
    // folders by layer, or flat as before issue 20 moved them.
    const layered = fs.existsSync(path.join(from, 'dist', 'process', 'native.js'));
    return {
      native: require(path.join(from, 'dist', ...(layered ? ['process'] : []), 'native.js')),
      virtiofsd: require(path.join(from, 'dist', ...(layered ? ['virtiofsd'] : []), 'virtiofsd.js')),
    };
  }
  if (addon) {
    const bindingsPath = require.resolve('bindings', { paths: [root] });
    if (!require.cache[bindingsPath]) {
      const m = new Module(bindingsPath, module);
      m.filename = bindingsPath;
      m.loaded = true;
      // src/native.ts calls bindings({ bindings: 'virtiofs_daemon.node', ... }).
      m.exports = (opts) => {
        const name = typeof opts === 'string' ? opts : opts && opts.bindings;
        if (!/^virtiofs_daemon(\.node)?$/.test(String(name))) throw new Error(`bench: unexpected bindings(${name})`);
        return require(addon);
      };
      require.cache[bindingsPath] = m;
    }
  }
  return {
    native: require(path.join(root, 'dist', 'process', 'native.js')),
    virtiofsd: require(path.join(root, 'dist', 'virtiofsd', 'virtiofsd.js')),
  };
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Where the benchmarks put their sockets (and the daemons' shared directory): $BENCH_TMPDIR, else
 * /dev/shm when it is a tmpfs, else the system's temp directory. A host keeps its daemons'
 * sockets on a tmpfs (/run); a disk file system charges every bind and unlink to its inode
 * allocator instead (ext4 without a journal scans past every inode deleted in the last 30 s,
 * so a storm of 1,000 binds pays for the previous storm's 1,000 unlinks, whoever made them).
 */
function tmpBase() {
  if (process.env.BENCH_TMPDIR) return process.env.BENCH_TMPDIR;
  try {
    if (fs.statfsSync('/dev/shm').type === TMPFS_MAGIC) return '/dev/shm';
  } catch {
    // No /dev/shm: the system's temp directory.
  }
  return require('node:os').tmpdir();
}

/** Monotonic clock in microseconds (float). */
function nowUs() {
  return Number(process.hrtime.bigint()) / 1e3;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A numeric field of /proc/self/status ("VmRSS" in kB, "Threads"). */
function statusField(name, pid = 'self') {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function rssKB() {
  return statusField('VmRSS');
}

function threadCount() {
  return statusField('Threads');
}

/** Open fds of this process (the directory's own fd not counted). */
function fdCount() {
  return fs.readdirSync('/proc/self/fd').length - 1;
}

/**
 * Grow this process's RSS to about `targetMB` MiB with Buffers (malloc'd memory outside the V8
 * heap, as a VMM's guest buffers or a bundler's caches would be) and write every page.
 * The returned array must stay reachable.
 */
function ballast(targetMB) {
  const chunk = 64 * 1024 * 1024;
  const keep = [];
  let want = targetMB * 1024 * 1024 - rssKB() * 1024;
  let i = 0;
  while (want > 0) {
    const size = Math.min(chunk, want);
    const b = Buffer.allocUnsafeSlow(size);
    b.fill(0x5a ^ (i++ & 0xff)); // memset: every page written, none left shared with the zero page
    keep.push(b);
    want -= size;
  }
  return keep;
}

/** Sorted copy. */
function sorted(a) {
  return Float64Array.from(a).sort();
}

/** Nearest-rank percentile of an ascending array, p in [0, 100]. */
function pct(s, p) {
  if (s.length === 0) return NaN;
  const k = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[k];
}

function summary(samples) {
  const s = sorted(samples);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, median: pct(s, 50), p99: pct(s, 99), min: s[0], max: s[s.length - 1], mean };
}

/** Parse `--key value` pairs into an object. */
function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      const key = argv[i].slice(2);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) out[key] = true;
      else out[key] = argv[++i];
    }
  }
  return out;
}

/**
 * Serve index.js over the IPC channel: each request {id, ...} goes to handler(msg) and is
 * answered {id, ok, result|error}. When the channel closes (index.js gone), cleanup() runs and
 * the process exits; so it does on SIGINT/SIGTERM.
 */
function serve(handler, cleanup) {
  let leaving = false;
  const leave = async (code) => {
    if (leaving) return;
    leaving = true;
    const timer = setTimeout(() => process.exit(code), 3000);
    try {
      await cleanup();
    } catch (err) {
      process.stderr.write(`bench worker ${process.pid}: cleanup failed: ${err && err.stack}\n`);
    }
    clearTimeout(timer);
    process.exit(code);
  };
  process.on('message', (msg) => {
    if (msg && msg.cmd === 'exit') {
      leave(0);
      return;
    }
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (result) => process.send({ id: msg.id, ok: true, result }),
        (err) => process.send({ id: msg.id, ok: false, error: String((err && err.stack) || err) }),
      );
  });
  process.on('disconnect', () => leave(1));
  process.on('SIGINT', () => leave(130));
  process.on('SIGTERM', () => leave(143));
}

/**
 * A runnable virtiofsd of `dialect` ('legacy' | 'rust'), found as the tests find it
 * ($VIRTIOFSD_LEGACY / $VIRTIOFSD_RUST, the distribution's path, or .cache/ where
 * scripts/setup.sh unpacks the other dialect). Throws, saying how to get one, when there is none.
 */
function virtiofsdPath(dialect) {
  return require(path.join(root, 'test', 'helpers', 'daemons.js')).virtiofsdPath(dialect);
}

/** The load averages as `os.loadavg()` gives them, as the tables print them ("0.12 0.34 0.56"). */
function loadAverages() {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/**
 * bench/ready-standin.c built without libc into `dir` (`ready-raw`): it prints the ready line
 * at once, so a start's cost is the launcher's. Returns its path.
 */
function rawReadyStandin(dir) {
  const out = path.join(dir, 'ready-raw');
  cp.execFileSync('cc', [
    '-O2',
    '-static',
    '-nostdlib',
    '-fno-stack-protector',
    '-fno-pie',
    '-no-pie',
    '-DBENCH_NOSTDLIB',
    '-o',
    out,
    path.join(__dirname, 'ready-standin.c'),
  ]);
  return out;
}

module.exports = {
  loadAverages,
  rawReadyStandin,
  root,
  tmpBase,
  virtiofsdPath,
  runDir,
  binDir,
  lib,
  nowUs,
  sleep,
  statusField,
  rssKB,
  threadCount,
  fdCount,
  ballast,
  sorted,
  pct,
  summary,
  parseArgs,
  serve,
};

'use strict';
/**
 * The one home of the helpers every test file shares: temp directories, waiting and sleeping,
 * what /proc says about us and our children (fds, RSS, zombies), capturing and counting loggers,
 * and the checks of the error contract (rejection, settle, assertTyped). Also, for the native tests:
 * where the probe is and running it through the library's spawn, a socket in a temp dir, and
 * a Node process with a hand-made fd table (runInner, test/helpers/inner.js).
 * test/helpers/daemons.js adds the real daemons and their process groups on top of this.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { threadId } = require('node:worker_threads');

const root = path.resolve(__dirname, '..', '..');
/** The probe built by scripts/build-helpers.js from test/helpers/probe.c. */
const probePath = path.join(root, 'build', 'helpers', 'probe');
/** The compiled library module (npm run build:ts). */
const nativeModulePath = path.join(root, 'dist', 'process', 'native.js');
/** A Node process that runs the library from a hand-made fd table (see runInner). */
const innerScript = path.join(__dirname, 'inner.js');

/** O_CLOEXEC and O_NONBLOCK as /proc/<pid>/fdinfo shows them (octal "flags:"). */
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;

let counter = 0;
/** A fresh path under os.tmpdir() for a probe report; nothing is created. */
function tempReportPath() {
  counter += 1;
  return path.join(os.tmpdir(), `vfsd-probe-${process.pid}-${threadId}-${Date.now()}-${counter}.json`);
}

/** A new directory under os.tmpdir(), removed (recursively) after test t. */
function tempDir(t, prefix = 'vfsd-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The probe's report at file, parsed; null while the file does not exist. */
function readReport(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text);
}

/** Resolve after ms milliseconds. */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll until predicate() (which may return a promise) gives a truthy value and resolve to it;
 * reject after timeoutMs with a message naming `what`.
 */
async function waitFor(predicate, { timeoutMs = 5000, intervalMs = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The report a still-running probe wrote to file (--out), once it is there. */
function waitForReport(file, timeoutMs = 5000) {
  return waitFor(() => readReport(file), { timeoutMs, what: `probe report ${file}` });
}

/** Resolve p, or reject with a message naming `what` after ms. */
function withTimeout(p, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Spawn the probe through the library with `--out <temp file>` plus `args`, and resolve
 * {report, exit, child} when onExit fires (report is null if the probe wrote none). The
 * report file is removed. `onSpawn(child, outFile)` runs right after spawn. Rejects, and
 * SIGKILLs the probe, if onExit has not come within timeoutMs.
 */
function runProbe({
  args = [],
  fds = ['null', 'null', 'null'],
  env,
  cwd,
  newProcessGroup,
  onSpawn,
  onExit,
  timeoutMs = 10000,
} = {}) {
  const { spawn } = require(nativeModulePath);
  const out = tempReportPath();
  return new Promise((resolve, reject) => {
    let child;
    let timer;
    const opts = {
      file: probePath,
      argv: [probePath, '--out', out, ...args],
      fds,
      onExit: (exit) => {
        clearTimeout(timer);
        let report;
        try {
          report = readReport(out);
          if (onExit) onExit(exit, child);
        } catch (err) {
          reject(err);
          return;
        } finally {
          fs.rmSync(out, { force: true });
        }
        resolve({ report, exit, child });
      },
    };
    if (env !== undefined) opts.env = env;
    if (cwd !== undefined) opts.cwd = cwd;
    if (newProcessGroup !== undefined) opts.newProcessGroup = newProcessGroup;
    child = spawn(opts);
    timer = setTimeout(() => {
      child.signal('SIGKILL');
      reject(new Error(`probe ${child.pid} (${args.join(' ')}) did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    if (onSpawn) {
      try {
        onSpawn(child, out);
      } catch (err) {
        child.signal('SIGKILL');
        reject(err);
      }
    }
  });
}

/**
 * Throw, naming the fix, when the probe is not built: the native tests spawn it, and would
 * otherwise each fail with a bare ENOENT.
 */
function requireProbe() {
  if (!fs.existsSync(probePath)) {
    throw new Error(
      `${probePath} is missing: run npm run build:helpers (after node-gyp rebuild, which empties build/)`,
    );
  }
}

/** Resolve at the next turn of the loop, after the I/O callbacks already due (an onExit, say). */
function tick() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A listening socket (the library's listenUnix) in a fresh temp dir, closed and unlinked after the test. */
function listenInTemp(t, name = 'test.sock') {
  const native = require(nativeModulePath);
  const sock = native.listenUnix(path.join(tempDir(t), name));
  t.after(() => {
    native.closeFd(sock.fd);
    native.unlinkSocket(sock);
  });
  return sock;
}

/**
 * Run test/helpers/inner.js in a Node process whose fd table is `stdio` (as for
 * child_process.spawn) and return its JSON result. stdio[2] should be 'pipe' (collected
 * for the failure message).
 */
function runInner(t, scenario, args, stdio, timeoutMs = 20000) {
  const assert = require('node:assert/strict');
  const cp = require('node:child_process');
  const result = path.join(tempDir(t, 'vfsd-inner-'), 'result.json');
  const r = cp.spawnSync(process.execPath, [innerScript, scenario, JSON.stringify({ ...args, result })], {
    stdio,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  const stderr = r.stderr ? r.stderr.toString() : '';
  assert.equal(
    r.error,
    undefined,
    `inner node (${scenario}) did not finish within ${timeoutMs} ms: ${r.error}\n${stderr}`,
  );
  const out = readReport(result);
  assert.ok(out, `inner node (${scenario}) wrote no result; status ${r.status}, signal ${r.signal}\n${stderr}`);
  assert.equal(out.error, undefined, `inner node (${scenario}) failed:\n${out.error}\n${stderr}`);
  assert.equal(r.status, 0, `inner node (${scenario}) exited with ${r.status}/${r.signal}\n${stderr}`);
  return out;
}

/**
 * Open what the library opens once per Node environment and keeps - the adoption lock file of
 * its runtime directory - so that an fd count taken before a first start compares with one
 * taken after it. Like libuv's reserve fd, it is one per environment, never one per daemon.
 */
function openOncePerEnvironment() {
  require('../../dist/process/runtime-dir.js').daemonLockHeld(1);
}

/** How many fds this process has open (after {@link openOncePerEnvironment}). */
function fdCount() {
  openOncePerEnvironment();
  return fs.readdirSync('/proc/self/fd').length;
}

/** How many threads this process has (Threads: in /proc/self/status). */
function threadCount() {
  const m = /^Threads:\s+(\d+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m[1]);
}

/** A field ("SigIgn", "SigBlk", ...) of /proc/<pid>/status as a BigInt mask. */
function statusMask(field, pid = 'self') {
  const m = new RegExp(`^${field}:\\s+([0-9a-f]+)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return BigInt(`0x${m[1]}`);
}

/** The bit of signal signo in a /proc/<pid>/status signal mask. */
function sigBit(signo) {
  return 1n << BigInt(signo - 1);
}

/**
 * /proc/<pid>/stat as {pid, comm, state, ppid, pgrp, starttime}, or null when there is no such
 * process (any more). starttime tells a recycled pid from the process we knew.
 */
function procStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ESRCH') return null;
    throw err;
  }
  // The command name is in parentheses and may hold anything: split after the last ')'.
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  return {
    pid: Number(pid),
    comm: text.slice(text.indexOf('(') + 1, close),
    state: rest[0],
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    starttime: rest[19],
  };
}

/**
 * "pid@starttime" of the running process pid: it names that process for its lifetime, where the
 * pid alone may name a later one (pids are recycled). Throws when there is no such process.
 */
function processIdentity(pid) {
  const st = procStat(pid);
  if (st === null) throw new Error(`no process ${pid}`);
  return `${st.pid}@${st.starttime}`;
}

/** Write an executable shell script; returns its path. */
function script(file, body) {
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`);
  fs.chmodSync(file, 0o755);
  return file;
}

/** True when pid is no process any more, or only a zombie waiting to be reaped. */
function isZombieOrGone(pid) {
  const st = procStat(pid);
  return st === null || st.state === 'Z' || st.state === 'X';
}

/** True when the process `known` (a procStat result) has been reaped: gone, or its pid recycled. */
function isReaped(known) {
  const st = procStat(known.pid);
  return st === null || st.starttime !== known.starttime;
}

/** True when the process `known` (a procStat result) is still running (not a zombie). */
function isRunning(known) {
  const st = procStat(known.pid);
  return st !== null && st.starttime === known.starttime && st.state !== 'Z' && st.state !== 'X';
}

/** procStat of every process on the machine (one /proc scan). */
function allProcesses() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = procStat(name);
    if (st) out.push(st);
  }
  return out;
}

/** Exited: a zombie (Z) or being torn down (X). */
const isDead = (st) => st.state === 'Z' || st.state === 'X';

/** procStat of every process whose parent is ppid (default: us). */
function childrenOf(ppid = process.pid) {
  return allProcesses().filter((st) => st.ppid === ppid);
}

/**
 * Our own children that have exited and were never reaped by us (a leak). Zombies of PID 1
 * (sandbox children orphaned by a killed daemon) are not ours and do not count.
 */
function zombieChildren(ppid = process.pid) {
  return childrenOf(ppid).filter(isDead);
}

/** Our own children that are alive. */
function liveChildren(ppid = process.pid) {
  return childrenOf(ppid).filter((st) => !isDead(st));
}

/**
 * Our fds as "fd -> target" lines, so that a leak says what leaked. Like fdCount(), it counts
 * the fd of its own readdir, whose target is '?' (closed by the time it is read).
 */
function fdTable() {
  openOncePerEnvironment();
  const out = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      target = '?';
    }
    out.push(`${fd} -> ${target}`);
  }
  return out;
}

/** True when p is a socket file (false when it is anything else or nothing). */
function isSocket(p) {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

/** True when something (of any type, a dangling symlink too) is at p. */
function exists(p) {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A pino logger at debug whose records (parsed) land in `records`. */
function captureLogger() {
  const pino = require('pino');
  const records = [];
  const logger = pino({ level: 'debug', base: null }, { write: (line) => records.push(JSON.parse(line)) });
  return { logger, records };
}

/** A pino logger at debug that only counts its records (counter.n), for the long loops. */
function countingLogger() {
  const pino = require('pino');
  const counter = { n: 0 };
  const logger = pino({ level: 'debug', base: null }, { write: () => counter.n++ });
  return { logger, counter };
}

/**
 * Await promise, which must reject, and resolve to its error for more checks; a fulfilment
 * fails the test with the value. `what` names the call in that failure.
 */
async function rejection(promise, what = 'the promise') {
  let value;
  try {
    value = await promise;
  } catch (err) {
    return err;
  }
  const assert = require('node:assert/strict');
  assert.fail(`${what}: expected a rejection, got ${JSON.stringify(value)}`);
}

const MiB = 1024 * 1024;

/** This process's resident set size, in MiB. */
function rssMiB() {
  return process.memoryUsage.rss() / MiB;
}

let gc;
/**
 * rssMiB() after two full garbage collections, for a baseline that garbage does not blur. The
 * first call enables gc() (--expose-gc, set at run time), so no test file needs the flag.
 */
function settleRss() {
  if (!gc) {
    require('node:v8').setFlagsFromString('--expose-gc');
    gc = require('node:vm').runInNewContext('gc');
  }
  gc();
  gc();
  return rssMiB();
}

/**
 * Call fn, which must return a promise and never throw synchronously (the package's promise
 * API), and resolve to { value } or { error }. `what` names the call in a failure.
 */
async function settle(fn, what) {
  let p;
  try {
    p = fn();
  } catch (err) {
    throw new Error(`${what} threw synchronously: ${err?.name}: ${err?.message}`, { cause: err });
  }
  if (!(p instanceof Promise)) throw new Error(`${what} did not return a promise`);
  return p.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

/** The error contract: err is a VirtiofsDaemonError with a string code and message. */
function assertTyped(err, what) {
  const assert = require('node:assert/strict');
  const { VirtiofsDaemonError } = require(path.join(root, 'dist', 'index.js'));
  assert.ok(
    err instanceof VirtiofsDaemonError,
    `${what}: expected a VirtiofsDaemonError, got ${err?.name}: ${err?.message}`,
  );
  assert.equal(typeof err.code, 'string', `${what}: no string code`);
  assert.equal(typeof err.message, 'string', `${what}: no string message`);
}

/** The open-file flags of fd (of pid) from /proc/<pid>/fdinfo, as a number. */
function fdFlags(fd, pid = 'self') {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
  return parseInt(m[1], 8);
}

/** SIGKILL `known` (a procStat result) if it is still that process; for cleanup after failures. */
function killIfAlive(known) {
  if (!isRunning(known)) return;
  try {
    process.kill(known.pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

/** A seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

module.exports = {
  prng,
  O_CLOEXEC,
  O_NONBLOCK,
  allProcesses,
  assertTyped,
  MiB,
  captureLogger,
  childrenOf,
  countingLogger,
  exists,
  fdCount,
  fdFlags,
  fdTable,
  isDead,
  isReaped,
  isRunning,
  isSocket,
  isZombieOrGone,
  killIfAlive,
  listenInTemp,
  liveChildren,
  nativeModulePath,
  probePath,
  procStat,
  processIdentity,
  readReport,
  rejection,
  root,
  rssMiB,
  requireProbe,
  runInner,
  runProbe,
  script,
  settle,
  settleRss,
  sigBit,
  sleep,
  statusMask,
  tempDir,
  tempReportPath,
  threadCount,
  tick,
  waitFor,
  waitForReport,
  withTimeout,
  zombieChildren,
};

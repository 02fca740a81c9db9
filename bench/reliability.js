#!/usr/bin/env node
'use strict';
/**
 * Reliability run: the soak, flood, PID-reuse, concurrency and resource-exhaustion cases of
 * the README's "Reliability" section, against REAL daemons (both virtiofsd dialects; nydusd via
 * the stand-in test/helpers/nydusd-standin.js), through the public API (require('../dist')).
 * Prints one table: what was tried, how often, and what was left behind.
 *
 *   npm run bench:reliability                 full sizes (9 min on 2 cores shared with other builds, load ~13)
 *   npm run bench:reliability -- --quick      the same cases, small counts (about 1 min)
 *   ... -- --cycles 10000 --nydusd-cycles 400 --inject 0.12 --concurrency 2 --flood-mib 1024
 *          --reuses 128 --daemons 200 --rounds 2 --only soak,flood,pid,conc,exhaust --seed 1 --json out.json
 *   (full defaults shown; --concurrency is per daemon kind; --inject is the share of cycles hit)
 *
 * Needs root (ns_last_pid, mounts of tiny tmpfs, setpriv) and both virtiofsd dialects, found as
 * the tests find them ($VIRTIOFSD_LEGACY / $VIRTIOFSD_RUST, then the well-known paths); without
 * them it fails and says how to get them. `npm run build` first.
 *
 * Every heavy case runs in a child node of its own (`--child <case>`), so that its fd and RSS
 * accounting is its own; each child prints one `RESULT {json}` line. Every wait is bounded: an
 * operation that does not settle in STALL_MS counts as a stall and the run moves on.
 *
 * "Left" columns are counted in the child after its last daemon ended:
 *   fds        open fds beyond the baseline taken after one warm-up start/stop per daemon kind;
 *   zombies    our children in state Z (unreaped);
 *   processes  live processes whose command line names the case's private temp dir (every
 *              daemon's argv holds its socket or source path there), wherever they were reparented;
 *   sockets    socket files left under that temp dir.
 */
const { execFileSync, spawn: cpSpawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const HELPERS = path.join(ROOT, 'build', 'helpers');
const FLOOD = path.join(HELPERS, 'stderr-flood');
const PID_REUSER = path.join(HELPERS, 'pid-reuser');
const REAPER_SRC = path.join(__dirname, 'foreign-reaper.cc');
const REAPER = path.join(HELPERS, 'foreign-reaper.node');
const STANDIN = path.join(ROOT, 'test', 'helpers', 'nydusd-standin.js');
const STALL_MS = 20000;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Small shared pieces

// The tests' helpers: sleep, and a seeded PRNG (mulberry32) so a run can be repeated with --seed.
const { prng, sleep } = require('../test/helpers/util.js');

/** Resolves to { value } or { error }, or { stalled: true } after ms. Never rejects. */
function settle(promise, ms = STALL_MS) {
  let timer;
  return Promise.race([
    promise.then(
      (value) => ({ value }),
      (error) => ({ error }),
    ),
    new Promise((r) => (timer = setTimeout(() => r({ stalled: true }), ms))),
  ]).finally(() => clearTimeout(timer));
}

function lib() {
  return require(path.join(ROOT, 'dist'));
}

/** A rejection users can rely on: a VirtiofsDaemonError with a string code. */
function isTyped(err) {
  return err instanceof lib().VirtiofsDaemonError && typeof err.code === 'string' && err.code !== '';
}

function describeErr(err) {
  if (err === undefined) return 'undefined';
  return `${err?.constructor?.name ?? typeof err}${err?.code ? ` ${err.code}` : ''}: ${String(err?.message ?? err).slice(0, 160)}`;
}

/**
 * Start d and, when it started, stop it; the exhaustion rows' outcome: 'ran and stopped',
 * 'typed <code>', 'UNTYPED', 'STALL' or 'STOP FAILED' (plus the onQuit count when it is not 1).
 * before/after bracket only the start (a limit that must not hold during the stop).
 */
async function startThenStop(d, { before = () => {}, after = () => {} } = {}) {
  let quits = 0;
  await before();
  const s = await settle(d.start(() => quits++));
  await after();
  if (s.stalled) return { outcome: 'STALL', detail: '' };
  if (s.error) return { outcome: isTyped(s.error) ? `typed ${s.error.code}` : 'UNTYPED', detail: describeErr(s.error) };
  const st = await settle(d.stop());
  let outcome = st.error || st.stalled ? 'STOP FAILED' : 'ran and stopped';
  if (quits !== 1) outcome += ` (onQuit ${quits})`;
  return { outcome, detail: '' };
}

function silentLogger() {
  return require('pino')({ level: 'silent' });
}

function procStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  return { pid: Number(pid), state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]) };
}

/** Children of pid (all its threads), from /proc/<pid>/task/<tid>/children. */
function childrenOf(pid) {
  const out = [];
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' '))
        if (c) out.push(Number(c));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const fdCount = () => fs.readdirSync('/proc/self/fd').length;

/** Live processes whose argv mentions `needle` (a private temp dir). */
function processesMentioning(needle) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57 || Number(name) === process.pid) continue;
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!cmd.includes(needle)) continue;
    const st = procStat(name);
    if (st && st.state !== 'Z' && st.state !== 'X') out.push(`${name}:${cmd.split('\0').slice(0, 3).join(' ')}`);
  }
  return out;
}

function socketsUnder(dir) {
  let n = 0;
  const walk = (d) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isSocket()) n++;
      else if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return n;
}

/** What a case left behind (see the header). */
function leftovers(fdBaseline, dir) {
  const kids = childrenOf(process.pid).map(procStat).filter(Boolean);
  return {
    fds: fdCount() - fdBaseline,
    zombies: kids.filter((s) => s.state === 'Z').length,
    liveChildren: kids.filter((s) => s.state !== 'Z').length,
    processes: processesMentioning(dir),
    sockets: socketsUnder(dir),
  };
}

function tempRoot(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vfsrel-${tag}-`));
}

function virtiofsdPaths() {
  const { virtiofsdPath } = require(path.join(ROOT, 'test', 'helpers', 'daemons.js'));
  return { legacy: virtiofsdPath('legacy'), rust: virtiofsdPath('rust') };
}

/**
 * Sends sig to pid only while pid is the child of `parent`: the harness must not have the very
 * race it looks for. The daemon (parent = us) cannot be reaped between the check and the kill:
 * the library reaps on this thread. A sandbox child (parent = the daemon) could in theory end
 * and be recycled in between; that window is a few microseconds.
 */
function kill(pid, sig, parent = process.pid) {
  if (procStat(pid)?.ppid !== parent) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

function inc(obj, key, by = 1) {
  obj[key] = (obj[key] ?? 0) + by;
}

// ---------------------------------------------------------------------------------------------
// Case 1: soak — start/stop cycles with crash injection

async function caseSoak({ cycles, concurrency, inject, seed, kinds = ['legacy', 'rust'] }) {
  const { Virtiofsd, Nydusd } = lib();
  const bins = { ...virtiofsdPaths(), nydusd: STANDIN };
  const dir = tempRoot('soak');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const rnd = prng(seed);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const logger = silentLogger();
  let serial = 0;
  const make = (dialect, stopSignal) => {
    const sock = path.join(dir, `s${serial++}.sock`);
    if (dialect === 'nydusd') {
      return new Nydusd({
        path: bins.nydusd,
        sockPath: sock,
        apiSockPath: `${sock}.api`,
        sourcePath: src,
        logger,
        stopTimeoutMs: 300,
      });
    }
    return new Virtiofsd({
      path: bins[dialect],
      dialect,
      socketPath: sock,
      sourcePath: src,
      logger,
      stopSignal,
      stopTimeoutMs: 300,
    });
  };

  // Warm-up (loads the addon, pino, the tracer): one cycle per kind, then the baseline.
  for (const dialect of kinds) {
    const d = make(dialect, 'SIGKILL');
    await d.start();
    await d.stop();
  }
  const fdBaseline = fdCount();

  const r = {
    cycles: 0,
    perDialect: {},
    resolved: 0,
    rejected: 0,
    rejectCodes: {},
    untyped: [],
    stopRejects: [],
    quitWrong: 0,
    quitNotYetAtStop: 0,
    resolvedToZero: 0,
    stalls: 0,
    injections: { planned: 0, delivered: 0, missed: 0, byPhase: {}, bySignal: {}, byTarget: {}, exits: {} },
  };
  const runs = []; // per resolved start: onQuit count, checked again at the end
  let next = 0;
  const t0 = Date.now();

  async function cycle(slot) {
    const d = slot.d;
    const inj =
      rnd() < inject
        ? {
            phase: pick(['start', 'ready', 'stop']),
            sig: pick(['SIGKILL', 'SIGSEGV', 'SIGTERM']),
            target: pick(['leader', 'child']),
            delay: rnd() * 6,
          }
        : null;
    const run = { quits: 0, exits: [] };
    let settled = false;
    let fired = null;
    const fire = () => {
      // The sandbox child when asked and there is one yet, else the leader.
      const pid = d.pid;
      if (!pid) return false;
      let target = pid;
      let which = 'leader';
      if (inj.target === 'child') {
        const kids = childrenOf(pid);
        if (kids.length) {
          target = kids[0];
          which = 'child';
        }
      }
      const phase = inj.phase === 'start' ? (settled ? 'ready' : 'start') : inj.phase;
      fired = kill(target, inj.sig, which === 'child' ? pid : process.pid) ? { phase, which } : { missed: true };
      return true;
    };
    if (inj) r.injections.planned++;
    const starting = d.start((exit) => {
      run.quits++;
      run.exits.push(exit);
    });
    if (inj?.phase === 'start') {
      // Poll until the daemon exists (spawned, not yet ready), then hit it after the delay.
      (async () => {
        const until = Date.now() + 2000;
        while (!d.pid && !settled && Date.now() < until) await new Promise(setImmediate);
        await sleep(inj.delay / 3);
        if (!fire()) fired = { missed: true };
      })();
    }
    const s = await settle(starting);
    settled = true;
    if (s.stalled) {
      r.stalls++;
      slot.d = make(slot.dialect, slot.stopSignal); // abandon the stuck instance
      return;
    }
    if (s.error) {
      r.rejected++;
      if (isTyped(s.error)) inc(r.rejectCodes, s.error.code);
      else if (r.untyped.length < 20) r.untyped.push(describeErr(s.error));
      else r.untyped.push('…');
      runs.push({ run, resolved: false });
    } else {
      r.resolved++;
      if (s.value === 0) r.resolvedToZero++; // the README promises the pid
      runs.push({ run, resolved: true });
      if (inj?.phase === 'ready') {
        await sleep(inj.delay);
        fire();
      }
      let stopping;
      if (inj?.phase === 'stop') {
        stopping = d.stop();
        if (inj.delay > 3) await sleep(inj.delay - 3);
        fire();
      } else {
        stopping = d.stop();
      }
      const st = await settle(stopping);
      if (st.stalled) {
        r.stalls++;
        slot.d = make(slot.dialect, slot.stopSignal);
      } else if (st.error) r.stopRejects.push(describeErr(st.error));
      else if (run.quits !== 1) r.quitNotYetAtStop++; // stop() resolves after onQuit ran (README)
    }
    if (inj) {
      // A start-phase injection may still be waiting for its moment; it gives up by itself.
      while (inj.phase === 'start' && fired === null) await sleep(1);
      if (fired === null || fired.missed)
        r.injections.missed++; // the start failed first, or the daemon was gone
      else {
        r.injections.delivered++;
        inc(r.injections.byPhase, fired.phase);
        inc(r.injections.bySignal, inj.sig);
        inc(r.injections.byTarget, fired.which);
        const e = run.exits[0];
        inc(r.injections.exits, e ? (e.signal ?? `code ${e.code}`) : 'start rejected');
      }
    }
  }

  const slots = [];
  for (let i = 0; i < concurrency * kinds.length; i++) {
    const dialect = kinds[i % kinds.length];
    const stopSignal = i % 4 < 2 ? 'SIGKILL' : 'SIGTERM';
    slots.push({ dialect, stopSignal, d: make(dialect, stopSignal) });
  }
  await Promise.all(
    slots.map(async (slot) => {
      while (next++ < cycles) {
        await cycle(slot);
        r.cycles++;
        inc(r.perDialect, slot.dialect);
      }
    }),
  );
  r.ms = Date.now() - t0;
  r.slots = slots.length;
  await sleep(200); // a late, second onQuit would show now
  for (const { run, resolved } of runs) if (run.quits !== (resolved ? 1 : 0)) r.quitWrong++;
  r.left = leftovers(fdBaseline, dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Case 2: stderr flood

/** Checks the flood's records as pino writes them: order, content, cut marks (as the test does). */
function floodChecker(maxLine) {
  const { Writable } = require('node:stream');
  const cycle = 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil((maxLine + 52) / 26));
  const c = { next: 0, records: 0, truncated: 0, ready: false, summary: null, tail: null, errors: [] };
  const fail = (m) => c.errors.length < 10 && c.errors.push(m);
  const cut = (total) => (total > maxLine ? total - maxLine : undefined);
  c.stream = new Writable({
    decodeStrings: false,
    write(chunk, _e, cb) {
      let rec;
      try {
        rec = JSON.parse(String(chunk));
      } catch (err) {
        fail(`bad record: ${err.message}`);
        return cb();
      }
      c.records++;
      const msg = rec.msg;
      if (typeof msg !== 'string') return cb();
      if (rec.truncated !== undefined) c.truncated++;
      let m;
      if (msg.includes('Waiting for vhost-user socket connection')) c.ready = true;
      else if ((m = /^#(\d+) (\d+) /.exec(msg))) {
        const n = Number(m[1]);
        if (n !== c.next) fail(`line #${n} where #${c.next} was due`);
        c.next = n + 1;
        const total = m[0].length + Number(m[2]);
        const kept = Math.min(total, maxLine) - m[0].length;
        const want =
          m[0] + cycle.substr(n % 26, kept) + (total > maxLine ? ` …[truncated ${total - maxLine} bytes]` : '');
        if (rec.truncated !== cut(total)) fail(`#${n}: truncated ${rec.truncated}, want ${cut(total)}`);
        if (msg !== want) fail(`#${n}: content differs`);
      } else if ((m = /^flood-done lines=(\d+) bytes=(\d+) long=(\d+)/.exec(msg))) {
        c.summary = { lines: +m[1], bytes: +m[2], long: +m[3] };
        if (c.summary.lines !== c.next) fail(`summary says ${m[1]} lines, got ${c.next}`);
      } else if ((m = /^#tail (\d+) /.exec(msg))) {
        const total = Number(m[1]);
        const kept = Math.min(total, maxLine) - m[0].length;
        const want = m[0] + 'x'.repeat(kept) + (total > maxLine ? ` …[truncated ${total - maxLine} bytes]` : '');
        if (rec.truncated !== cut(total)) fail(`tail: truncated ${rec.truncated}, want ${cut(total)}`);
        if (msg !== want) fail('tail: content differs');
        c.tail = { total };
      }
      cb();
    },
  });
  return c;
}

const FLOOD_MODES = {
  lines: (bytes) => ['--bytes', bytes, '--long-every', 0, '--tail-bytes', 0],
  'mib-lines': (bytes) => ['--bytes', bytes, '--long-every', 1, '--long-bytes', MiB, '--tail-bytes', 0],
  'no-newline': (bytes) => ['--bytes', 0, '--tail-bytes', bytes],
};

async function caseFlood({ mode, mib }) {
  const { Virtiofsd } = lib();
  const dir = tempRoot('flood');
  const bytes = mib * MiB;
  const out = path.join(dir, 'writer.out');
  // stderr-flood refuses the daemon's argv: a wrapper drops it, and keeps the writer's own
  // report (its longest blocked write, measured around each write()) out of the pipe we read.
  const wrapper = path.join(dir, 'flood');
  fs.writeFileSync(
    wrapper,
    `#!/bin/sh\nexec '${FLOOD}' --print-ready ${FLOOD_MODES[mode](bytes).join(' ')} >'${out}'\n`,
    { mode: 0o755 },
  );
  const checker = floodChecker(16 * 1024);
  const logger = require('pino')({ level: 'debug', base: null }, checker.stream);
  const d = new Virtiofsd({
    path: wrapper,
    dialect: 'legacy',
    socketPath: path.join(dir, 'v.sock'),
    sourcePath: dir,
    logger,
  });
  global.gc?.();
  const fdBaseline = fdCount();
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const quits = [];
  const t0 = Date.now();
  const s = await settle(d.start((x) => quits.push(x)));
  let stalled = !!s.stalled;
  const until = Date.now() + 600000;
  while (!s.error && !quits.length && Date.now() < until) await sleep(20);
  const ms = Date.now() - t0;
  clearInterval(sampler);
  if (!quits.length) {
    stalled = true;
    await settle(d.stop());
  }
  const writer = /max_write_block_us=(\d+) total_write_block_us=(\d+)/.exec(
    fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '',
  );
  const r = {
    mode,
    bytes,
    ms,
    mibPerS: bytes / MiB / (ms / 1000),
    startError: s.error ? describeErr(s.error) : null,
    exit: quits[0] ?? null,
    quits: quits.length,
    lines: checker.next,
    records: checker.records,
    truncated: checker.truncated,
    ready: checker.ready,
    summary: checker.summary,
    tail: checker.tail,
    errors: checker.errors,
    writerMaxBlockMs: writer ? Number(writer[1]) / 1000 : null,
    writerTotalBlockMs: writer ? Number(writer[2]) / 1000 : null,
    rss0MiB: rss0 / MiB,
    rssPeakMiB: peak / MiB,
    stalls: stalled ? 1 : 0,
  };
  r.left = leftovers(fdBaseline, dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Case 3: PID reuse — a sentinel takes a dead daemon's pid (and leads a group of that number)

function startReuser(pid, holdMs) {
  const child = cpSpawn(PID_REUSER, [String(pid), String(holdMs), '5000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  const waiters = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s) => {
    text += s;
    for (const w of waiters.splice(0)) w();
  });
  const done = new Promise((r) => child.on('close', () => r(text)));
  const waitFor = async (re, ms) => {
    const until = Date.now() + ms;
    while (!re.test(text) && Date.now() < until) await Promise.race([new Promise((r) => waiters.push(r)), sleep(50)]);
    return re.exec(text);
  };
  return { child, done, waitFor, text: () => text };
}

async function casePidReuse({ reuses, foreign, seed }) {
  const { Virtiofsd } = lib();
  const bins = virtiofsdPaths();
  const dir = tempRoot(foreign ? 'reap' : 'reuse');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const rnd = prng(seed);
  const logger = silentLogger();
  let reaper;
  if (foreign) {
    if (!fs.existsSync(REAPER) || fs.statSync(REAPER).mtimeMs < fs.statSync(REAPER_SRC).mtimeMs) {
      execFileSync('g++', ['-O2', '-Wall', '-shared', '-fPIC', '-I/usr/include/node', '-o', REAPER, REAPER_SRC], {
        stdio: 'inherit',
      });
    }
    reaper = require(REAPER);
  }
  // How the daemon ends before its pid is handed on.
  const ENDINGS = foreign
    ? ['external SIGKILL + foreign waitpid']
    : ['external SIGKILL', 'external SIGSEGV', 'stop()', 'stop() racing external SIGKILL'];
  const r = {
    attempts: 0,
    reuses: 0,
    notReused: 0,
    sentinelsSignalled: 0,
    signalledBy: {},
    signalledDetail: [],
    byEnding: {},
    stalls: 0,
    untyped: [],
    quitWrong: 0,
    timeouts: 0,
  };
  for (const dialect of ['legacy', 'rust']) {
    const d = new Virtiofsd({
      path: bins[dialect],
      dialect,
      socketPath: path.join(dir, 'w.sock'),
      sourcePath: src,
      logger,
    });
    await d.start();
    await d.stop();
  }
  const fdBaseline = fdCount();
  const t0 = Date.now();
  for (let i = 0; r.reuses < reuses && r.attempts < reuses * 2; i++) {
    r.attempts++;
    const dialect = Math.floor(i / ENDINGS.length) % 2 ? 'rust' : 'legacy';
    const ending = ENDINGS[i % ENDINGS.length];
    const d = new Virtiofsd({
      path: bins[dialect],
      dialect,
      socketPath: path.join(dir, `p${i}.sock`),
      sourcePath: src,
      logger,
      stopSignal: 'SIGTERM',
      stopTimeoutMs: 300,
    });
    const quits = [];
    const s = await settle(d.start((x) => quits.push(x)));
    if (s.stalled) {
      r.stalls++;
      continue;
    }
    if (s.error) {
      if (!isTyped(s.error)) r.untyped.push(describeErr(s.error));
      continue;
    }
    const pid = s.value;
    const att = startReuser(pid, 300);
    await att.waitFor(/^armed$/m, 2000);
    await sleep(rnd() * 3);
    let stopping = null;
    let harnessKill = null; // whether our own kill went out (false: the daemon was no longer our child)
    if (ending === 'external SIGKILL') harnessKill = kill(pid, 'SIGKILL');
    else if (ending === 'external SIGSEGV') harnessKill = kill(pid, 'SIGSEGV');
    else if (ending === 'stop()') stopping = d.stop();
    else if (ending === 'stop() racing external SIGKILL') {
      stopping = d.stop();
      harnessKill = kill(pid, 'SIGKILL');
    } else {
      // The foreign reaper: kill, reap behind the library's back, and do not return to the event
      // loop (where the library would see the exit) until the sentinel holds the pid.
      harnessKill = kill(pid, 'SIGKILL');
      reaper.reap(pid);
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        const st = procStat(pid);
        if (st && st.ppid === att.child.pid) break;
      }
    }
    // Meanwhile and afterwards, everything a caller may do with the old daemon object.
    await att.waitFor(/^sentinel \d+$/m, 3000);
    const st = await settle(stopping ?? d.stop());
    if (st.stalled) r.stalls++;
    else if (st.error && !isTyped(st.error)) r.untyped.push(describeErr(st.error));
    await settle(d.stop());
    const w = await settle(
      (async () => {
        while (!quits.length) await sleep(5);
      })(),
      3000,
    );
    if (w.stalled || quits.length !== 1) r.quitWrong++;
    const text = await settle(att.done, 5000);
    const m = /result reused=(\d) status=(\S+)|result timeout/.exec(text.value ?? att.text());
    if (!m || m[0] === 'result timeout') {
      r.timeouts++;
      continue;
    }
    const reused = m[1] === '1';
    const byEnding = (r.byEnding[ending] ??= { reuses: 0, signalled: 0 });
    if (!reused) {
      r.notReused++;
      continue;
    }
    r.reuses++;
    byEnding.reuses++;
    if (m[2] !== 'exited:0') {
      if (r.signalledDetail.length < 10)
        r.signalledDetail.push({ i, dialect, ending, harnessKill, status: m[2], exit: quits[0] });
      r.sentinelsSignalled++;
      byEnding.signalled++;
      inc(r.signalledBy, m[2]);
    }
  }
  r.ms = Date.now() - t0;
  r.left = leftovers(fdBaseline, dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Case 4: concurrency — n daemons of each dialect started and stopped at once

async function caseConcurrency({ n, rounds }) {
  const { Virtiofsd } = lib();
  const bins = virtiofsdPaths();
  const dir = tempRoot('conc');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const logger = silentLogger();
  for (const dialect of ['legacy', 'rust']) {
    const d = new Virtiofsd({
      path: bins[dialect],
      dialect,
      socketPath: path.join(dir, 'w.sock'),
      sourcePath: src,
      logger,
    });
    await d.start();
    await d.stop();
  }
  const fdBaseline = fdCount();
  const r = { rounds: [], stalls: 0, untyped: [], quitWrong: 0 };
  for (let round = 0; round < rounds; round++) {
    const ds = [];
    for (const dialect of ['legacy', 'rust']) {
      for (let i = 0; i < n; i++) {
        ds.push({
          dialect,
          quits: 0,
          exit: null,
          d: new Virtiofsd({
            path: bins[dialect],
            dialect,
            socketPath: path.join(dir, `${dialect[0]}${i}.sock`),
            sourcePath: src,
            logger,
          }),
        });
      }
    }
    const t0 = Date.now();
    const starts = await Promise.all(
      ds.map((x) =>
        settle(
          x.d.start((exit) => {
            x.quits++;
            x.exit ??= exit;
          }),
        ),
      ),
    );
    const tReady = Date.now() - t0;
    const ready = { legacy: 0, rust: 0 };
    const errors = {};
    starts.forEach((s, i) => {
      if (s.stalled) r.stalls++;
      else if (s.error) {
        inc(errors, s.error.code ?? 'untyped');
        if (!isTyped(s.error)) r.untyped.push(describeErr(s.error));
      } else ready[ds[i].dialect]++;
    });
    // Daemons that ended on their own between ready and our stop, and what start() resolved to
    // for them (the README promises the pid).
    const alive = ds.filter((x) => x.d.pid).length;
    const resolvedToZero = starts.filter((s) => !s.error && !s.stalled && s.value === 0).length;
    const t1 = Date.now();
    const stops = await Promise.all(ds.map((x) => settle(x.d.stop())));
    const tStop = Date.now() - t1;
    let stopped = 0;
    for (const s of stops) {
      if (s.stalled) r.stalls++;
      else if (s.error) r.untyped.push(describeErr(s.error));
      else stopped++;
    }
    // onQuit must have run once per started daemon by the time its stop() resolved; a late
    // one is told apart from a missing or second one by looking again a second later.
    const quitsAtStop = {};
    const quitsLater = {};
    const earlyExits = {};
    starts.forEach((s, i) => {
      inc(quitsAtStop, `${ds[i].quits}`);
      if (ds[i].quits !== (!s.error && !s.stalled ? 1 : 0)) r.quitWrong++;
      const e = ds[i].exit;
      if (e && !e.requested) inc(earlyExits, e.signal ?? `code ${e.code}`);
    });
    await sleep(1000);
    for (const x of ds) inc(quitsLater, `${x.quits}`);
    r.rounds.push({
      ready,
      alive,
      resolvedToZero,
      earlyExits,
      errors,
      startAllMs: tReady,
      stopAllMs: tStop,
      stopped,
      quitsAtStop,
      quitsLater,
    });
  }
  r.left = leftovers(fdBaseline, dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Case 5: resource exhaustion — each case must end in a typed error (or a clean run), nothing left

function mountTmpfs(dir, opts) {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
  return () => execFileSync('umount', ['-l', dir]);
}

/**
 * Sets our own RLIMIT_NOFILE soft limit through prlimit(1), run by a shell started beforehand:
 * once the limit is low we could not spawn prlimit to raise it again (the pipes need fds).
 * Returns { set(n), restore(), close() }, all async.
 */
function nofileControl() {
  const [soft, hard] = execFileSync(
    'prlimit',
    ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '-o', 'SOFT,HARD'],
    { encoding: 'utf8' },
  )
    .trim()
    .split(/\s+/);
  const sh = cpSpawn(
    'sh',
    ['-c', `while read n; do prlimit --pid ${process.pid} --nofile=$n:${hard} && echo ok || echo fail; done`],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  sh.stdout.setEncoding('utf8');
  const ask = (n) =>
    new Promise((resolve, reject) => {
      sh.stdout.once('data', (s) =>
        s.startsWith('ok') ? resolve() : reject(new Error(`prlimit --nofile=${n} failed`)),
      );
      sh.stdin.write(`${n}\n`);
    });
  return { set: (n) => ask(n), restore: () => ask(soft), close: () => sh.stdin.end() };
}

async function caseExhaust({ nofileSteps, asUser, rootDir }) {
  const lib_ = lib();
  const { Virtiofsd, Nydusd } = lib_;
  const bins = virtiofsdPaths();
  const dir = tempRoot(asUser ? 'eacces' : 'exhaust');
  fs.chmodSync(dir, 0o755);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const logger = silentLogger();
  const kinds = {
    legacy: (o) =>
      new Virtiofsd({ path: bins.legacy, dialect: 'legacy', sourcePath: src, logger, startTimeoutMs: 3000, ...o }),
    rust: (o) =>
      new Virtiofsd({ path: bins.rust, dialect: 'rust', sourcePath: src, logger, startTimeoutMs: 3000, ...o }),
    nydusd: (o) => {
      const sock = o.socketPath;
      delete o.socketPath;
      return new Nydusd({
        path: STANDIN,
        sockPath: sock,
        apiSockPath: `${sock}.api`,
        sourcePath: src,
        logger,
        startTimeoutMs: 5000,
        ...o,
      });
    },
  };
  // Warm-up (as root one clean run of each kind; as uid 65534 one failing start) before the baseline.
  for (const k of asUser ? ['legacy'] : Object.keys(kinds)) {
    const d = kinds[k]({ socketPath: path.join(asUser ? rootDir : dir, `warm-${k}.sock`) });
    if ((await settle(d.start())).value) await d.stop();
  }
  const fdBaseline = fdCount();
  const results = [];
  let n = 0;
  const sub = () => {
    const p = path.join(dir, `c${n++}`);
    fs.mkdirSync(p);
    return p;
  };
  /** One case: set up, start, stop if it started, tear down; record the outcome. */
  async function one(name, kind, setup) {
    const where = sub();
    let teardown;
    let opts;
    try {
      ({ opts, teardown = () => {} } = setup(where));
    } catch (err) {
      results.push({ name, kind, outcome: 'SETUP FAILED', detail: describeErr(err) });
      return;
    }
    const d = kinds[kind]({ socketPath: path.join(where, 's.sock'), ...opts });
    const { outcome, detail } = await startThenStop(d);
    let teardownFailure = '';
    try {
      teardown();
    } catch (err) {
      teardownFailure = ` teardown: ${err.message}`;
    }
    results.push({ name, kind, outcome, detail: detail + teardownFailure });
  }

  if (asUser) {
    // Unprivileged caller, socket directory owned by root 0755: EACCES on bind.
    for (const k of ['legacy', 'rust'])
      await one('socket dir not writable (EACCES, as uid 65534)', k, () => ({
        opts: { socketPath: path.join(rootDir, 's.sock') },
      }));
    return { results, left: leftovers(fdBaseline, dir) };
  }

  const KINDS = ['legacy', 'rust', 'nydusd'];
  // RLIMIT_NOFILE just above what we hold: k fds free, for k = 0 .. nofileSteps-1.
  const nofile = nofileControl();
  for (const k of KINDS) {
    for (let free = 0; free < nofileSteps; free++) {
      const where = sub();
      const d = kinds[k]({ socketPath: path.join(where, 's.sock') });
      const { outcome, detail } = await startThenStop(d, {
        before: () => nofile.set(fdCount() + free),
        after: () => nofile.restore(),
      });
      results.push({ name: `RLIMIT_NOFILE = open fds + ${free}`, kind: k, outcome, detail });
    }
  }
  nofile.close();
  const notExec = path.join(dir, 'not-executable');
  fs.writeFileSync(notExec, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  const noShebang = path.join(dir, 'garbage-binary');
  fs.writeFileSync(noShebang, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3, 4, 0, 0]), { mode: 0o755 });
  const badInterp = path.join(dir, 'bad-interpreter');
  fs.writeFileSync(badInterp, '#!/nonexistent/interpreter\n', { mode: 0o755 });
  const exits = path.join(dir, 'exits-at-once');
  fs.writeFileSync(exits, '#!/bin/sh\necho "fatal: nope" >&2\nexit 3\n', { mode: 0o755 });
  const silent = path.join(dir, 'never-ready');
  fs.writeFileSync(silent, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const busySock = path.join(dir, 'busy.sock');
  const server = require('node:net').createServer().listen(busySock);
  await new Promise((r) => server.once('listening', r));
  const regular = path.join(dir, 'regular-file');
  fs.writeFileSync(regular, 'x');

  const CASES = [
    [
      'socket dir on a full tmpfs (ENOSPC: no inode left)',
      (w) => ({ opts: {}, teardown: mountTmpfs(w, 'size=64k,nr_inodes=1') }),
    ],
    ['socket dir on a read-only mount (EROFS)', (w) => ({ opts: {}, teardown: mountTmpfs(w, 'ro,size=64k') })],
    ['socket dir missing (ENOENT)', (w) => ({ opts: { socketPath: path.join(w, 'missing', 's.sock') } })],
    ['socket dir is a file (ENOTDIR)', () => ({ opts: { socketPath: path.join(regular, 's.sock') } })],
    ['socket path too long (ENAMETOOLONG)', (w) => ({ opts: { socketPath: path.join(w, 'x'.repeat(120) + '.sock') } })],
    ['socket path is a regular file (EEXIST)', () => ({ opts: { socketPath: regular } })],
    ['socket path has a live listener (EADDRINUSE)', () => ({ opts: { socketPath: busySock } })],
    ['binary missing (ENOENT)', (w) => ({ opts: { path: path.join(w, 'no-such-daemon') } })],
    ['binary not executable (EACCES)', () => ({ opts: { path: notExec } })],
    ['binary is a directory (EACCES)', (w) => ({ opts: { path: w } })],
    ['binary is not a valid executable (ENOEXEC)', () => ({ opts: { path: noShebang } })],
    ['binary interpreter missing (ENOENT)', () => ({ opts: { path: badInterp } })],
    ['daemon exits at once (code 3)', () => ({ opts: { path: exits } })],
    ['daemon never ready (start timeout)', () => ({ opts: { path: silent, startTimeoutMs: 300 } })],
    ['shared directory missing', (w) => ({ opts: { sourcePath: path.join(w, 'missing-src') } })],
  ];
  for (const [name, setup] of CASES) for (const k of KINDS) await one(name, k, setup);
  server.close();
  await sleep(50);
  return { results, left: leftovers(fdBaseline, dir), dir: (fs.rmSync(dir, { recursive: true, force: true }), dir) };
}

// ---------------------------------------------------------------------------------------------
// Parent: run each case in a child node, print the table

const CASES = { soak: caseSoak, flood: caseFlood, pid: casePidReuse, conc: caseConcurrency, exhaust: caseExhaust };

async function childMain(name, params) {
  const r = await CASES[name](params);
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  process.exit(0);
}

function parseArgs(argv) {
  const o = { quick: false, seed: 1, only: null, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--cycles') o.cycles = Number(val());
    else if (a === '--inject') o.inject = Number(val());
    else if (a === '--nydusd-cycles') o.nydusdCycles = Number(val());
    else if (a === '--concurrency') o.concurrency = Number(val());
    else if (a === '--flood-mib') o.floodMib = Number(val());
    else if (a === '--reuses') o.reuses = Number(val());
    else if (a === '--daemons') o.daemons = Number(val());
    else if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--only') o.only = val().split(',');
    else if (a === '--json') o.json = val();
    else throw new Error(`unknown argument ${a} (see the header of bench/reliability.js)`);
  }
  const q = o.quick;
  o.cycles ??= q ? 2000 : 10000;
  o.nydusdCycles ??= q ? 40 : 400;
  o.inject ??= 0.12;
  o.concurrency ??= 2;
  o.floodMib ??= q ? 128 : 1024;
  o.reuses ??= q ? 12 : 128;
  o.daemons ??= q ? 50 : 200;
  o.rounds ??= q ? 1 : 2;
  o.nofileSteps = q ? 4 : 12;
  return o;
}

/** Runs one case in a child node; resolves to its result (or { crashed }). */
function runChild(name, params, { asUser = false, timeoutMs = 3600000 } = {}) {
  const node = [process.execPath, '--expose-gc', __filename, '--child', name, JSON.stringify(params)];
  const argv = asUser ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...node] : node;
  return new Promise((resolve) => {
    const c = cpSpawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8');
    c.stdout.on('data', (s) => (out += s));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      const m = /^RESULT (.*)$/m.exec(out);
      resolve(m ? JSON.parse(m[1]) : { crashed: `exit ${code ?? signal}`, output: out.slice(-2000) });
    });
  });
}

const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: 1 }) : String(n));
const leftCells = (l) => (l ? [l.fds, l.zombies, l.processes.length, l.sockets] : ['?', '?', '?', '?']);

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid() !== 0) throw new Error('run as root: ns_last_pid, tmpfs mounts and setpriv need it');
  for (const f of [FLOOD, PID_REUSER, path.join(ROOT, 'dist', 'index.js')]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  }
  virtiofsdPaths(); // fails now, with how to get them, when a dialect is missing
  const want = (c) => !o.only || o.only.includes(c);
  const rows = [];
  const raw = {};
  const notes = [];
  const tAll = Date.now();
  const load0 = os.loadavg();
  const step = async (key, label, fn) => {
    const t = Date.now();
    process.stderr.write(`reliability: ${label} …\n`);
    const r = await fn();
    raw[key] = r;
    if (r.crashed) {
      rows.push([
        label,
        '—',
        `CHILD CRASHED (${r.crashed})`,
        '?',
        '?',
        '?',
        '?',
        '—',
        '—',
        fmt((Date.now() - t) / 1000),
      ]);
      notes.push(`${label}: ${r.output}`);
      return null;
    }
    return { r, s: (Date.now() - t) / 1000 };
  };

  const soakRow = (r, s, what) => {
    const inj = r.injections;
    const list = (o) =>
      Object.entries(o)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    rows.push([
      `soak: ${fmt(r.cycles)} start/stop cycles of ${what}, ${r.slots} at a time, ` +
        `with ${fmt(inj.delivered)} crash injections (${list(inj.bySignal)}; during ${list(inj.byPhase)}; to the ${list(inj.byTarget)})`,
      fmt(r.cycles),
      `${fmt(r.resolved)} started${r.resolvedToZero ? ` (${r.resolvedToZero} of them RESOLVED TO PID 0)` : ''}, ${fmt(r.rejected)} rejected (${list(r.rejectCodes) || 'none'}), ` +
        `${r.untyped.length} untyped, ${r.stopRejects.length} stop() rejections`,
      ...leftCells(r.left),
      (r.quitWrong === 0 ? `exactly once × ${fmt(r.resolved)}` : `WRONG in ${r.quitWrong}`) +
        (r.quitNotYetAtStop ? `; not yet called when stop() resolved: ${r.quitNotYetAtStop}` : ''),
      r.stalls,
      fmt(s),
    ]);
    if (r.untyped.length) notes.push(`soak untyped rejections: ${r.untyped.join(' | ')}`);
    if (r.stopRejects.length) notes.push(`soak stop() rejections: ${r.stopRejects.slice(0, 5).join(' | ')}`);
    if (r.left.processes.length) notes.push(`soak processes left: ${r.left.processes.slice(0, 5).join(' | ')}`);
  };
  if (want('soak')) {
    const x = await step('soak', 'soak', () =>
      runChild('soak', { cycles: o.cycles, concurrency: o.concurrency, inject: o.inject, seed: o.seed }),
    );
    if (x)
      soakRow(x.r, x.s, `virtiofsd (legacy ${fmt(x.r.perDialect.legacy ?? 0)}, rust ${fmt(x.r.perDialect.rust ?? 0)})`);
    const y = await step('soak-nydusd', 'soak nydusd', () =>
      runChild('soak', {
        cycles: o.nydusdCycles,
        concurrency: o.concurrency,
        inject: o.inject,
        seed: o.seed,
        kinds: ['nydusd'],
      }),
    );
    if (y) soakRow(y.r, y.s, 'nydusd (the stand-in)');
  }
  if (want('flood')) {
    for (const mode of Object.keys(FLOOD_MODES)) {
      const x = await step(`flood-${mode}`, `flood ${mode}`, () => runChild('flood', { mode, mib: o.floodMib }));
      if (!x) continue;
      const { r } = x;
      const what = {
        lines: 'numbered lines of 0 B – 64 KiB',
        'mib-lines': 'lines of 1 MiB',
        'no-newline': 'one line, no newline',
      }[mode];
      const ok =
        r.errors.length === 0 &&
        r.ready &&
        r.summary !== null &&
        (mode !== 'no-newline' || r.tail !== null) &&
        r.exit?.code === 0;
      rows.push([
        `flood: ${fmt(o.floodMib)} MiB of stderr, ${what}`,
        fmt(r.lines + (r.tail ? 1 : 0)),
        `${ok ? 'in order, intact' : 'BROKEN'}${r.errors.length ? ` (${r.errors.slice(0, 3).join('; ')})` : ''}; ${fmt(r.truncated)} cut with the marker; ` +
          `${fmt(r.mibPerS)} MiB/s; writer's longest blocked write ${fmt(r.writerMaxBlockMs)} ms; manager RSS ${fmt(r.rss0MiB)} → peak ${fmt(r.rssPeakMiB)} MiB`,
        ...leftCells(r.left),
        r.quits === 1 ? 'once' : `WRONG (${r.quits})`,
        r.stalls,
        fmt(x.s),
      ]);
    }
  }
  if (want('pid')) {
    for (const foreign of [false, true]) {
      const key = foreign ? 'pid-foreign' : 'pid';
      const x = await step(key, foreign ? 'pid reuse after a foreign reap' : 'pid reuse', () =>
        runChild('pid', { reuses: o.reuses, foreign, seed: o.seed }),
      );
      if (!x) continue;
      const { r } = x;
      rows.push([
        foreign
          ? 'pid reuse after a foreign reap: daemon SIGKILLed, waitpid()ed by another addon, its pid handed to a sentinel (ns_last_pid) before the library sees the exit'
          : 'pid reuse: daemon ends (SIGKILL, SIGSEGV, stop(), stop() racing SIGKILL), a sentinel takes its pid and group id (ns_last_pid); then stop() again',
        fmt(r.reuses),
        `${fmt(r.reuses)} reuses in ${fmt(r.attempts)} attempts; sentinels signalled: ${r.sentinelsSignalled}${r.sentinelsSignalled ? ' — FAILED' : ''}` +
          (r.sentinelsSignalled
            ? ` (${Object.entries(r.signalledBy)
                .map(([k, v]) => `${k} ×${v}`)
                .join(', ')})`
            : '') +
          `${r.untyped.length ? `; ${r.untyped.length} untyped` : ''}`,
        ...leftCells(r.left),
        r.quitWrong === 0 ? 'once each' : `WRONG in ${r.quitWrong}`,
        r.stalls,
        fmt(x.s),
      ]);
      if (r.untyped.length) notes.push(`${key} untyped: ${r.untyped.slice(0, 5).join(' | ')}`);
    }
  }
  if (want('conc')) {
    const x = await step('conc', 'concurrency', () => runChild('conc', { n: o.daemons, rounds: o.rounds }));
    if (x) {
      const { r } = x;
      const rd = r.rounds;
      rows.push([
        `concurrency: ${o.daemons} legacy + ${o.daemons} rust virtiofsd started at once, then stopped at once (${rd.length} round${rd.length > 1 ? 's' : ''})`,
        fmt(rd.length * 2 * o.daemons),
        rd
          .map(
            (x) =>
              `ready ${x.ready.legacy}+${x.ready.rust} in ${fmt(x.startAllMs)} ms, stopped ${x.stopped} in ${fmt(x.stopAllMs)} ms` +
              (Object.keys(x.errors).length ? `, errors ${JSON.stringify(x.errors)}` : '') +
              (Object.keys(x.earlyExits).length ? `, ended before stop(): ${JSON.stringify(x.earlyExits)}` : '') +
              (x.resolvedToZero ? `, start() RESOLVED TO PID 0: ${x.resolvedToZero}` : ''),
          )
          .join('; '),
        ...leftCells(r.left),
        r.quitWrong === 0
          ? 'once each'
          : `WRONG in ${r.quitWrong} (when stop() resolved: ${rd.map((x) => JSON.stringify(x.quitsAtStop)).join(', ')}; 1 s later: ${rd.map((x) => JSON.stringify(x.quitsLater)).join(', ')})`,
        r.stalls,
        fmt(x.s),
      ]);
    }
  }
  if (want('exhaust')) {
    const x = await step('exhaust', 'resource exhaustion', () => runChild('exhaust', { nofileSteps: o.nofileSteps }));
    const y = await step('exhaust-user', 'EACCES as an unprivileged caller', async () => {
      const rootDir = tempRoot('eacces-rootowned');
      fs.chmodSync(rootDir, 0o755);
      try {
        return await runChild('exhaust', { asUser: true, nofileSteps: 0, rootDir }, { asUser: true });
      } finally {
        fs.rmSync(rootDir, { recursive: true, force: true });
      }
    });
    if (x) {
      const all = [...x.r.results, ...(y?.r.results ?? [])];
      const by = {};
      for (const c of all)
        inc(
          by,
          /^typed/.test(c.outcome) ? 'typed error' : c.outcome === 'ran and stopped' ? 'ran and stopped' : c.outcome,
        );
      const bad = all.filter((c) => !/^typed|^ran and stopped$/.test(c.outcome));
      const l = x.r.left;
      const lu = y?.r.left ?? { fds: 0, zombies: 0, processes: [], sockets: 0 };
      rows.push([
        `resource exhaustion: RLIMIT_NOFILE at open fds + 0…${o.nofileSteps - 1}, ENOSPC, EROFS, EACCES (uid 65534), ENOENT/ENOTDIR/ENAMETOOLONG/EEXIST/EADDRINUSE socket paths, missing/non-executable/directory/garbage binaries, missing interpreter, exit at once, never ready, missing shared dir — for legacy, rust and nydusd (stand-in)`,
        fmt(all.length),
        Object.entries(by)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
        l.fds + lu.fds,
        l.zombies + lu.zombies,
        l.processes.length + lu.processes.length,
        l.sockets + lu.sockets,
        '—',
        all.filter((c) => c.outcome === 'STALL').length,
        fmt(x.s + (y?.s ?? 0)),
      ]);
      for (const c of bad) notes.push(`exhaustion ${c.kind} "${c.name}": ${c.outcome} ${c.detail}`);
      raw.exhaustDetail = all.map(
        (c) =>
          `${c.kind.padEnd(6)} ${c.name}: ${c.outcome}${c.detail && !/^ran/.test(c.outcome) ? ` — ${c.detail}` : ''}`,
      );
    }
  }

  const total = (Date.now() - tAll) / 1000;
  const head = [
    'what was tried',
    'count',
    'result',
    'fds left',
    'zombies',
    'processes left',
    'sockets left',
    'onQuit',
    'stalls',
    's',
  ];
  const lines = [`| ${head.join(' | ')} |`, `| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  const load1 = os.loadavg();
  console.log(
    `Reliability run${o.quick ? ' (--quick)' : ''}, ${new Date().toISOString()} · Node ${process.version} · ${os.type()} ${os.release()} · ` +
      `${os.cpus().length} CPUs · load ${load0.map((x) => x.toFixed(2)).join('/')} at start, ${load1.map((x) => x.toFixed(2)).join('/')} at end · ${fmt(total)} s\n`,
  );
  console.log(lines.join('\n'));
  if (raw.exhaustDetail)
    console.log(`\nResource-exhaustion cases:\n${raw.exhaustDetail.map((s) => `  ${s}`).join('\n')}`);
  if (notes.length) console.log(`\nProblems:\n${notes.map((s) => `  - ${s}`).join('\n')}`);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, total, raw }, null, 2));
}

if (process.argv[2] === '--child') {
  childMain(process.argv[3], JSON.parse(process.argv[4])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(`reliability: ${err.stack ?? err}`);
    process.exit(1);
  });
}

'use strict';
/**
 * `npm run bench` (node --expose-gc bench/index.js): the README's benchmark tables.
 *
 *   Table 1  spawn → exit reaped of a tiny program: our spawn, child_process.spawn and a C
 *            posix_spawn loop, at several parent RSS sizes (one worker process per size,
 *            spawners interleaved round by round).
 *   Table 2  1,000 live children: start time, signal-and-reap time, parent RSS / fds /
 *            threads per child (one fresh process per run, spawners interleaved run by run).
 *   Table 3  virtiofsd start → ready and → GET_FEATURES answered: Virtiofsd.start() against a
 *            net.Server + child_process.spawn baseline, per dialect, at two RSS sizes.
 *
 * A measurement tool: nothing is asserted. Markdown goes to stdout and bench/results.md,
 * progress to stderr. Knobs (environment):
 *
 *   BENCH_QUICK=1            a ~1 minute smoke run (few iterations)
 *   BENCH_TABLES=1,2,3       which tables
 *   BENCH_RSS_MB=100,2048,4096   Table 1 parent RSS levels (MiB)
 *   BENCH_ROUNDS, BENCH_SPAWNS   Table 1: rounds, spawns per spawner per round
 *   BENCH_CP_ROUND_MS        Table 1: time cap of one child_process round (it is slow at high RSS)
 *   BENCH_T1_SPAWNERS=ours,cp,c   Table 1 spawners, for diagnosis; `ours-env` adds our spawn with
 *                            the environment passed as an array built once
 *   BENCH_MANY_COUNT, BENCH_MANY_REPS   Table 2: children per run, runs per spawner
 *   BENCH_VFSD_RSS_MB=100,4096, BENCH_VFSD_ITERS   Table 3: RSS levels, iterations per cell
 *   VIRTIOFSD_LEGACY, VIRTIOFSD_RUST   Table 3's daemons (default: found as the tests find them,
 *                            test/helpers/daemons.js)
 *   BENCH_TARGET=raw         how the targets (true.c, sleeper.c) are built: raw (no libc, the
 *                            default), static (static glibc) or dynamic (build-helpers' build)
 *   BENCH_OUT                where to write the markdown (default bench/results.md)
 */
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const c = require('./common.js');
const { addonSearchList } = require('../scripts/addon-path.js');

const quick = process.env.BENCH_QUICK === '1';
const num = (name, full, smoke) => {
  const v = process.env[name];
  return v !== undefined && v !== '' ? Number(v) : quick ? smoke : full;
};
const list = (name, full) =>
  (process.env[name] || full)
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);

const cfg = {
  tables: (process.env.BENCH_TABLES || '1,2,3').split(',').map((s) => s.trim()),
  rssLevels: list('BENCH_RSS_MB', '100,2048,4096'),
  // For diagnosis: leave a spawner out of Table 1 (e.g. BENCH_T1_SPAWNERS=ours,c).
  t1Spawners: (process.env.BENCH_T1_SPAWNERS || 'ours,cp,c').split(',').map((s) => s.trim()),
  rounds: num('BENCH_ROUNDS', 20, 3),
  spawns: num('BENCH_SPAWNS', 200, 40),
  cpRoundMs: num('BENCH_CP_ROUND_MS', 2000, 400),
  manyCount: num('BENCH_MANY_COUNT', 1000, 1000),
  manyReps: num('BENCH_MANY_REPS', 7, 1),
  vfsdLevels: list('BENCH_VFSD_RSS_MB', '100,4096'),
  vfsdIters: num('BENCH_VFSD_ITERS', 30, 3),
  out: process.env.BENCH_OUT || path.join(__dirname, 'results.md'),
};

const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Cleanup: every process we start is tracked, and so is every daemon process group a worker
// announces; all of it goes on exit, on Ctrl-C and on errors.

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfsd-bench-'));
const binDir = path.join(runDir, 'bin');
const procs = new Set();
const daemonGroups = new Set();
let cleanedUp = false;

function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

function cleanupSync() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const p of procs) {
    try {
      p.kill('SIGKILL');
    } catch {
      // it has exited already
    }
  }
  for (const pgid of daemonGroups) killGroup(pgid);
  fs.rmSync(runDir, { recursive: true, force: true });
}

let shuttingDown = false;

async function shutdown(code) {
  if (shuttingDown) return;
  shuttingDown = true;
  // Workers clean up themselves on SIGTERM (their daemons and sockets); give them a moment.
  for (const p of procs) {
    try {
      p.kill('SIGTERM');
    } catch {
      // it has exited already
    }
  }
  const deadline = Date.now() + 3000;
  while ([...procs].some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < deadline)
    await c.sleep(20);
  cleanupSync();
  process.exit(code);
}

process.on('SIGINT', () => {
  log('interrupted; cleaning up');
  shutdown(130);
});
process.on('SIGTERM', () => shutdown(143));
process.on('exit', cleanupSync);

// ---------------------------------------------------------------------------------------------
// Workers

const workerEnv = () => ({
  ...process.env,
  BENCH_RUN_DIR: runDir,
  BENCH_BIN_DIR: binDir,
  BENCH_ADDON: path.join(runDir, 'virtiofs_daemon.node'),
});

/** Fork a worker script and wait for its {event: 'ready'}. Returns {info, request(msg), close()}. */
function startWorker(script, args) {
  const child = cp.fork(path.join(__dirname, script), args, {
    execArgv: ['--expose-gc'],
    env: workerEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  procs.add(child);
  const pending = new Map();
  let nextId = 0;
  let readyResolve;
  let readyReject;
  const ready = new Promise((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  child.on('message', (msg) => {
    if (msg.event === 'ready') readyResolve(msg);
    else if (msg.event === 'daemon') daemonGroups.add(msg.pgid);
    else if (msg.event === 'daemonGone') daemonGroups.delete(msg.pgid);
    else if (msg.id !== undefined && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${script}: ${msg.error}`));
    }
  });
  child.on('exit', (code, signal) => {
    procs.delete(child);
    const err = new Error(`${script} ${args.join(' ')} exited (code ${code}, signal ${signal})`);
    readyReject(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });
  return ready.then((info) => ({
    info,
    pid: child.pid,
    request(msg) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, ...msg });
      });
    },
    close() {
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.send({ cmd: 'exit' });
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    },
  }));
}

/** The C reference of Table 1, kept alive between its rounds (--stdin). */
async function startCRef(rssMB, target) {
  const child = cp.spawn(path.join(binDir, 'posix-spawn-loop'), ['0', String(rssMB), target, '--stdin'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  procs.add(child);
  child.on('exit', () => procs.delete(child));
  const lines = readline.createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  lines.on('line', (line) => {
    const w = waiters.shift();
    if (w) w.resolve(JSON.parse(line));
    else queue.push(line);
  });
  child.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`posix-spawn-loop exited with code ${code}`));
  });
  const next = () =>
    queue.length
      ? Promise.resolve(JSON.parse(queue.shift()))
      : new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  const info = await next();
  return {
    info,
    async round(n) {
      child.stdin.write(`${n}\n`);
      return next();
    },
    close() {
      return new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Preparation: helpers built by scripts/build-helpers.js, static builds of the two targets,
// everything copied into the run directory.

function haveStaticLibc() {
  try {
    const r = cp.spawnSync(process.env.CC || 'cc', ['-print-file-name=libc.a'], { encoding: 'utf8' });
    const p = r.stdout.trim();
    return path.isAbsolute(p) && fs.existsSync(p);
  } catch {
    return false;
  }
}

function prepare() {
  // The addon the library itself would load: a build from source first, else the prebuild.
  const candidates = addonSearchList();
  const addon = candidates.find((f) => fs.existsSync(f));
  if (!addon) throw new Error(`no addon at ${candidates.join(' or ')}: run npm ci (or npm run build) first`);
  log(`addon: ${path.relative(c.root, addon)}`);
  for (const f of [
    path.join(c.root, 'dist', 'process', 'native.js'),
    path.join(c.root, 'dist', 'virtiofsd', 'virtiofsd.js'),
  ]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run npm ci (or npm run build:ts) first`);
  }
  fs.copyFileSync(addon, path.join(runDir, 'virtiofs_daemon.node'));

  log('building helpers (node scripts/build-helpers.js)');
  const r = cp.spawnSync(process.execPath, [path.join(c.root, 'scripts', 'build-helpers.js')], {
    stdio: ['ignore', 2, 2],
  });
  if (r.status !== 0) throw new Error('scripts/build-helpers.js failed');
  fs.mkdirSync(binDir);
  for (const name of ['true', 'sleeper', 'posix-spawn-loop', 'spawn-many', 'clear-nonblock']) {
    const src = path.join(c.root, 'build', 'helpers', name);
    if (!fs.existsSync(src)) throw new Error(`${src} is missing after build-helpers`);
    fs.copyFileSync(src, path.join(binDir, name));
    fs.chmodSync(path.join(binDir, name), 0o755);
  }
  // The targets: raw (no libc, see bench/true.c) when the compiler can do it, else static
  // glibc when libc.a is there, else the dynamic build of build-helpers.
  const cc = process.env.CC || 'cc';
  const targets = { true: path.join(binDir, 'true'), sleeper: path.join(binDir, 'sleeper'), linkage: 'dynamic glibc' };
  const build = (flags, suffix) => {
    const outs = {};
    for (const name of ['true', 'sleeper']) {
      outs[name] = path.join(binDir, `${name}-${suffix}`);
      const r = cp.spawnSync(cc, ['-O2', '-Wall', ...flags, '-o', outs[name], path.join(__dirname, `${name}.c`)], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`${cc} ${flags.join(' ')} ${name}.c failed: ${(r.stderr || '').trim()}`);
    }
    // Sanity: the target must exit 0.
    const t = cp.spawnSync(outs.true, [], { stdio: 'ignore' });
    if (t.status !== 0) throw new Error(`${outs.true} exited ${t.status} (signal ${t.signal})`);
    return outs;
  };
  const want = process.env.BENCH_TARGET || 'raw'; // raw | static | dynamic
  try {
    if (want !== 'raw') throw new Error(`BENCH_TARGET=${want}`);
    Object.assign(
      targets,
      build(['-static', '-nostdlib', '-fno-stack-protector', '-fno-pie', '-no-pie', '-DBENCH_NOSTDLIB'], 'raw'),
      {
        linkage: 'raw (no libc: `cc -static -nostdlib -DBENCH_NOSTDLIB`)',
      },
    );
  } catch (err) {
    if (want === 'raw') log(`raw targets: ${err.message}; trying static glibc`);
    if (want !== 'dynamic' && haveStaticLibc()) {
      try {
        Object.assign(targets, build(['-static'], 'static'), { linkage: 'static glibc' });
      } catch (err2) {
        log(`static targets: ${err2.message}; using the dynamic ones`);
      }
    }
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 2)}×` : '—';
const mb = (kb) => `${f0(kb / 1024)} MB`;
const rssLabel = (m) => (m >= 1024 ? `${+(m / 1024).toFixed(1)} GB` : `${m} MB`);

function table(headers, rows, align) {
  const a = align || headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const sep = a.map((x) => (x === 'r' ? '---:' : x === 'c' ? ':---:' : '---'));
  return [headers, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Table 1

const SPAWNERS = {
  ours: 'ours (native spawn)',
  'ours-env': 'ours, env array built once',
  cp: 'child_process.spawn',
  c: 'C posix_spawn (reference)',
};

async function table1(targets) {
  const results = [];
  for (const level of cfg.rssLevels) {
    log(`Table 1: parent RSS ${rssLabel(level)}: touching memory`);
    const [worker, cref] = await Promise.all([
      startWorker('spawn-worker.js', ['--rss', String(level), '--target', targets.true]),
      startCRef(level, targets.true),
    ]);
    try {
      const acc = {};
      const rss = {};
      for (const m of Object.keys(SPAWNERS)) {
        acc[m] = { spawn: [], reaped: [] };
        rss[m] = m === 'c' ? cref.info.rssKB : worker.info.rssKB;
      }
      const runRound = async (mode, n, record) => {
        let samples;
        if (mode === 'c') {
          const r = await cref.round(n);
          rss.c = r.rssKB;
          samples = r.samples_us;
          if (record) {
            acc.c.spawn.push(...r.spawn_us);
            acc.c.reaped.push(...r.samples_us);
          }
        } else {
          const r = await worker.request({ cmd: 'round', mode, n, maxMs: mode === 'cp' ? cfg.cpRoundMs : 0 });
          rss[mode] = r.rssKB;
          samples = r.reapedUs;
          if (record) {
            acc[mode].spawn.push(...r.spawnUs);
            acc[mode].reaped.push(...r.reapedUs);
          }
        }
        return c.summary(samples).median;
      };
      // Let the machine settle after touching gigabytes (on a VM, first touches of guest memory
      // fault in the host too), then warm up, discarded: page cache, lazy setup, JIT.
      await c.sleep(quick ? 200 : 1000);
      const order = cfg.t1Spawners;
      for (const mode of order) await runRound(mode, mode === 'cp' ? 3 : quick ? 30 : 200, false);
      for (let r = 0; r < cfg.rounds; r++) {
        const rot = order.map((_, i) => order[(i + r) % order.length]);
        const meds = {};
        for (const mode of rot) meds[mode] = await runRound(mode, cfg.spawns, true);
        log(
          `Table 1: ${rssLabel(level)}: round ${r + 1}/${cfg.rounds}: median µs ${rot.map((m) => `${m} ${f0(meds[m])}`).join(', ')}`,
        );
      }
      const res = { level, rss };
      for (const m of Object.keys(SPAWNERS)) res[m] = { ...c.summary(acc[m].reaped), call: c.summary(acc[m].spawn) };
      results.push(res);
    } finally {
      await Promise.all([worker.close(), cref.close()]);
    }
  }
  return results;
}

function renderTable1(results, targets) {
  const rows = [];
  for (const r of results) {
    for (const mode of ['c', 'ours', 'ours-env', 'cp']) {
      const s = r[mode];
      if (!s.n) continue;
      rows.push([
        rssLabel(r.level),
        SPAWNERS[mode],
        mb(r.rss[mode]),
        f0(s.median),
        f0(s.p99),
        f0(1e6 / s.mean),
        mode === 'c' ? '1×' : ratio(s.median, r.c.median),
        mode === 'c' ? '1×' : ratio(s.p99, r.c.p99),
        f0(s.call.median),
        f0(s.n),
      ]);
    }
  }
  const t = table(
    [
      'parent RSS',
      'spawner',
      'parent RSS (actual)',
      'median µs',
      'p99 µs',
      'spawns/s',
      'median ×C',
      'p99 ×C',
      'spawn() returns, median µs',
      'n',
    ],
    rows,
    ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
  const glance = table(
    ['median ratio', ...results.map((r) => rssLabel(r.level))],
    [
      ['ours / C', ...results.map((r) => ratio(r.ours.median, r.c.median))],
      ['child_process / C', ...results.map((r) => ratio(r.cp.median, r.c.median))],
      ['child_process / ours', ...results.map((r) => ratio(r.cp.median, r.ours.median))],
    ],
  );
  return [
    '## Table 1: spawn → exit reaped, one tiny child at a time',
    '',
    t,
    '',
    glance,
    '',
    `Notes. Target: \`bench/true.c\`, exits 0 at once; built ${targets.linkage}. Every child gets ` +
      "/dev/null on 0, 1 and 2 and a listening unix socket at 3 (ours: `fds: ['null', 'null', 'null', sock.fd]`; " +
      "child_process: `stdio: ['ignore', 'ignore', 'ignore', sock.fd]`; C: posix_spawn file actions, plus closefrom(4)); " +
      "env is the parent's. Time: from before `spawn()` until the exit callback (child_process: the `'exit'` event; C: " +
      '`waitpid()` returned). Our callback runs before the final reap (the child is a zombie then); the reap ' +
      "(`waitid` + `close(pidfd)`) follows right after it. The Node parent holds its RSS in touched Buffers (malloc'd, " +
      'outside the V8 heap), one worker process per RSS level; the C parent (`bench/posix-spawn-loop.c`) malloc+memsets ' +
      'the same amount. The three spawners run interleaved in rounds ' +
      `(${cfg.rounds} rounds × ${cfg.spawns} spawns each, rotating the order; a child_process round stops after ` +
      `${cfg.cpRoundMs} ms, hence its smaller n). spawns/s = 1 / mean. "spawn() returns": until the synchronous ` +
      "spawn call (C: `posix_spawn()`) returned; all three return once the child has exec'd.",
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Table 2

async function table2(targets) {
  const runs = { ours: [], cp: [], c: [] };
  const order = ['ours', 'cp', 'c'];
  for (let rep = 0; rep < cfg.manyReps; rep++) {
    const rot = order.map((_, i) => order[(i + rep) % order.length]);
    for (const mode of rot) {
      if (mode === 'c') {
        const r = await new Promise((resolve, reject) => {
          const child = cp.execFile(
            path.join(binDir, 'spawn-many'),
            [String(cfg.manyCount), targets.sleeper],
            (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))),
          );
          procs.add(child);
          child.on('exit', () => procs.delete(child));
        });
        runs.c.push(r);
      } else {
        const w = await startWorker('many-worker.js', [
          '--mode',
          mode,
          '--count',
          String(cfg.manyCount),
          '--target',
          targets.sleeper,
        ]);
        try {
          runs[mode].push(await w.request({ cmd: 'run' }));
        } finally {
          await w.close();
        }
      }
    }
    const last = (m) => runs[m][runs[m].length - 1];
    log(
      `Table 2: run ${rep + 1}/${cfg.manyReps}: start/reap ms ${order.map((m) => `${m} ${f0(last(m).startMs)}/${f0(last(m).reapMs)}`).join(', ')}`,
    );
  }
  return runs;
}

function renderTable2(runs, targets) {
  const med = (arr, fn) => c.summary(arr.map(fn)).median;
  const range = (arr, fn) => {
    const s = c.summary(arr.map(fn));
    return arr.length > 1 ? ` (${f0(s.min)}–${f0(s.max)})` : '';
  };
  const rows = [];
  for (const mode of ['c', 'ours', 'cp']) {
    const rs = runs[mode];
    if (!rs.length) continue;
    const n = rs[0].count;
    const isNode = mode !== 'c';
    rows.push([
      SPAWNERS[mode],
      `${f0(med(rs, (r) => r.startMs))}${range(rs, (r) => r.startMs)}`,
      f0(n / (med(rs, (r) => r.startMs) / 1e3)),
      `${f1(med(rs, (r) => r.reapMs))}${range(rs, (r) => r.reapMs)}`,
      f2(med(rs, (r) => (r.rssAfterKB - r.rssBeforeKB) / n)),
      isNode ? f0(med(rs, (r) => (r.heapAfter - r.heapBefore) / n)) : '—',
      f2(med(rs, (r) => (r.fdsAfter - r.fdsBefore) / n)),
      `${f0(med(rs, (r) => r.first100Us))} → ${f0(med(rs, (r) => r.last100Us))}`,
      `${f0(med(rs, (r) => r.threadsBefore))} → ${f0(med(rs, (r) => r.threadsAfter))}`,
      isNode ? f0(med(rs, (r) => r.fdsEnd - r.fdsBefore)) : '—',
      String(rs.length),
    ]);
  }
  const ratios = [];
  if (runs.ours.length && runs.cp.length && runs.c.length) {
    const m = (mode, fn) => med(runs[mode], fn);
    ratios.push(
      table(
        ['median ratio', 'start all', 'signal + reap all'],
        [
          [
            'ours / C',
            ratio(
              m('ours', (r) => r.startMs),
              m('c', (r) => r.startMs),
            ),
            ratio(
              m('ours', (r) => r.reapMs),
              m('c', (r) => r.reapMs),
            ),
          ],
          [
            'child_process / C',
            ratio(
              m('cp', (r) => r.startMs),
              m('c', (r) => r.startMs),
            ),
            ratio(
              m('cp', (r) => r.reapMs),
              m('c', (r) => r.reapMs),
            ),
          ],
          [
            'child_process / ours',
            ratio(
              m('cp', (r) => r.startMs),
              m('ours', (r) => r.startMs),
            ),
            ratio(
              m('cp', (r) => r.reapMs),
              m('ours', (r) => r.reapMs),
            ),
          ],
        ],
      ),
      '',
    );
  }
  const count = (runs.ours[0] || runs.cp[0] || runs.c[0] || {}).count;
  return [
    `## Table 2: ${f0(count)} live children`,
    '',
    table(
      [
        'spawner',
        `start all ${f0(count)}, ms`,
        'starts/s',
        'SIGKILL all + reap all, ms',
        'extra parent RSS / child, KB',
        'extra JS heap / child, bytes',
        'extra parent fds / child',
        'one spawn, µs: first 100 → last 100',
        'parent threads before → after',
        'fds left after reap',
        'runs',
      ],
      rows,
    ),
    '',
    ...ratios,
    `Notes. Target: \`bench/sleeper.c\` (\`pause()\` in a loop; built ${targets.linkage}; it asks for ` +
      "PR_SET_PDEATHSIG so none can outlive the benchmark), /dev/null on 0, 1 and 2 (ours: `fds: ['null', 'null', " +
      "'null']`, child_process: `stdio: 'ignore'`, so no pipes). Each run is a fresh process (C: `bench/spawn-many.c`, " +
      'posix_spawn + kill + waitpid(-1)), runs interleaved; values are medians over the runs, (min–max) in brackets. ' +
      '"Start all": the loop of synchronous spawn calls (each returns once its child has exec\'d); "one spawn": the ' +
      "median of one such call among the first and among the last 100 (a clone without CLONE_FILES copies the parent's " +
      'fd table, and the child closes it, so every fd the parent holds, e.g. one pidfd per live child, makes the next ' +
      'spawn dearer). "SIGKILL all + reap ' +
      'all": from the first kill until the last exit callback. RSS, heap, fd and thread counts are read after a full GC, ' +
      'before the first and after the last spawn (one spawn + reap beforehand, uncounted, pays the one-time setup). ' +
      `RLIMIT_NOFILE seen by Node: ${nofile()}.`,
  ].join('\n');
}

function nofile() {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m ? `soft ${m[1]}, hard ${m[2]}` : 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Table 3

function dialects() {
  const out = [];
  const skipped = [];
  for (const dialect of ['legacy', 'rust']) {
    let binary;
    try {
      binary = c.virtiofsdPath(dialect);
    } catch (err) {
      skipped.push(`${dialect} (${String(err.message).split('\n')[0]})`);
      continue;
    }
    const head = Buffer.alloc(2);
    const fd = fs.openSync(binary, 'r');
    fs.readSync(fd, head, 0, 2, 0);
    fs.closeSync(fd);
    out.push({ dialect, binary, script: head.toString() === '#!' });
  }
  return { out, skipped };
}

async function table3() {
  const { out: ds, skipped } = dialects();
  const sourceDir = path.join(runDir, 'shared');
  fs.mkdirSync(sourceDir);
  fs.writeFileSync(path.join(sourceDir, 'hello.txt'), 'hello\n');
  const results = [];
  for (const level of cfg.vfsdLevels) {
    log(`Table 3: parent RSS ${rssLabel(level)}: touching memory`);
    const w = await startWorker('virtiofsd-worker.js', ['--rss', String(level), '--source', sourceDir]);
    try {
      const acc = new Map();
      const key = (d, m) => `${d}/${m}`;
      const combos = ds.flatMap((d) => ['ours', 'baseline'].map((mode) => ({ ...d, mode })));
      for (const cmb of combos)
        acc.set(key(cmb.dialect, cmb.mode), { ready: [], hs: [], features: new Set(), errors: [] });
      const once = async (cmb, record) => {
        try {
          const r = await w.request({ cmd: 'iter', mode: cmb.mode, dialect: cmb.dialect, binary: cmb.binary });
          if (!record) return;
          const a = acc.get(key(cmb.dialect, cmb.mode));
          a.ready.push(r.readyMs);
          a.hs.push(r.handshakeMs);
          a.features.add(r.features);
        } catch (err) {
          acc.get(key(cmb.dialect, cmb.mode)).errors.push(String(err.message).split('\n').slice(0, 3).join(' / '));
          log(`Table 3: ${cmb.dialect}/${cmb.mode} failed: ${String(err.message).split('\n')[0]}`);
        }
      };
      for (const cmb of combos) await once(cmb, false); // warm-up
      for (let i = 0; i < cfg.vfsdIters; i++) {
        const rot = combos.map((_, k) => combos[(k + i) % combos.length]);
        for (const cmb of rot) await once(cmb, true);
        if ((i + 1) % 10 === 0 || i + 1 === cfg.vfsdIters)
          log(`Table 3: ${rssLabel(level)}: iteration ${i + 1}/${cfg.vfsdIters}`);
      }
      results.push({
        level,
        rssKB: w.info.rssKB,
        cells: combos.map((cmb) => {
          const a = acc.get(key(cmb.dialect, cmb.mode));
          return {
            ...cmb,
            ready: c.summary(a.ready),
            hs: c.summary(a.hs),
            features: [...a.features],
            errors: a.errors,
          };
        }),
      });
    } finally {
      await w.close();
    }
  }
  return { results, skipped, dialects: ds };
}

function renderTable3({ results, skipped, dialects: ds }) {
  const rows = [];
  const errors = [];
  for (const r of results) {
    for (const cell of r.cells) {
      const ours = r.cells.find((x) => x.dialect === cell.dialect && x.mode === 'ours');
      rows.push([
        rssLabel(r.level),
        cell.dialect,
        cell.mode === 'ours' ? '`Virtiofsd.start()`' : 'net.Server + child_process baseline',
        f1(cell.ready.median),
        f1(cell.ready.p99),
        f1(cell.hs.median),
        f1(cell.hs.p99),
        cell.mode === 'ours' ? '1×' : ratio(cell.ready.median, ours.ready.median),
        String(cell.ready.n) + (cell.errors.length ? ` (${cell.errors.length} failed)` : ''),
      ]);
      for (const e of cell.errors.slice(0, 2)) errors.push(`- ${rssLabel(r.level)} ${cell.dialect} ${cell.mode}: ${e}`);
    }
  }
  const features = [...new Set(results.flatMap((r) => r.cells.map((x) => `${x.dialect}: ${x.features.join(', ')}`)))];
  return [
    '## Table 3: virtiofsd start',
    '',
    table(
      [
        'parent RSS',
        'dialect',
        'method',
        'start → ready, median ms',
        'p99 ms',
        'start → GET_FEATURES answered, median ms',
        'p99 ms',
        'ready ×ours',
        'n',
      ],
      rows,
      ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    'Notes. "Ready": the daemon printed "Waiting for vhost-user socket connection" on stderr (ours: `start()` ' +
      'resolved; baseline: the line came through the child\'s stderr pipe). "GET_FEATURES answered": then a vhost-user ' +
      'front-end (`test/helpers/vhost-user.js`) connected and got VHOST_USER_GET_FEATURES answered ' +
      `(${features.join('; ')}). Ours runs with an explicit \`dialect\`, a pino logger at info level writing to /dev/null, ` +
      "and includes its option checks, socket creation and chown. Teardown (disconnect, SIGKILL to the daemon's " +
      'process group, wait until the group is empty, remove the socket) is not timed. Cells run interleaved, one ' +
      `worker process per RSS level, ${cfg.vfsdIters} iterations each after one warm-up` +
      (cfg.vfsdIters < 100 ? '; with so few samples p99 is about the maximum.' : '.'),
    '',
    'The baseline, "made to work" with Node\'s own API only: (1) `net.createServer().listen(tmpPath)`: bind and listen ' +
      "are synchronous, `server._handle.fd` is the listening fd, and it is O_NONBLOCK, on which the legacy daemon's " +
      'accept() fails with EAGAIN and it exits; Node has no fcntl(). (2) `child_process.spawn(clear-nonblock, [virtiofsd, ' +
      "...args], {stdio: ['ignore', 'ignore', 'pipe', fd], detached: true})`, where `bench/clear-nonblock.c` clears " +
      'O_NONBLOCK on fd 3 (a flag of the shared open file description) and execs the daemon. (3) In the same tick, ' +
      "`fs.linkSync(tmpPath, socketPath)` then `server.close()`: net.Server would otherwise accept the VMM's connection " +
      'itself (it accepts on its own from the event loop, and there is no way to pause that), and close() unlinks the ' +
      'path it listened on; since the event loop has not run between listen and close, Node never accepts, and the ' +
      'second name survives the unlink. Same daemon arguments as ours (`buildVirtiofsdArgs`).' +
      (skipped.length ? ` Skipped: ${skipped.join(', ')}.` : ''),
    '',
    `Binaries: ${ds
      .map(
        (d) =>
          `${d.dialect} \`${d.binary}\`${d.script ? ' (a shell script that execs the real daemon: its start includes sh)' : ''}`,
      )
      .join('; ')}.`,
    ...(errors.length ? ['', 'Failures:', ...errors] : []),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

function machineInfo() {
  const cpu =
    (/^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) || [])[1] ||
    os.cpus()[0]?.model ||
    'unknown';
  let thp = 'unknown';
  try {
    thp = (/\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8')) || [])[1] || thp;
  } catch {
    // no transparent huge pages here: report the default
  }
  let commit = '';
  try {
    commit = cp
      .execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
        cwd: c.root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      .trim();
  } catch {
    // not a git checkout: no commit to report
  }
  const env = Object.entries(process.env)
    .filter(
      ([k]) =>
        (k.startsWith('BENCH_') && !['BENCH_RUN_DIR', 'BENCH_BIN_DIR', 'BENCH_ADDON'].includes(k)) ||
        k.startsWith('VIRTIOFSD_'),
    )
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  return [
    '# virtiofs-daemon benchmarks',
    '',
    `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} · Node ${process.version} · Linux ${os.release()} · ${cpu} ×${os.cpus().length} · ` +
      `${f0(os.totalmem() / 2 ** 30)} GiB RAM · THP ${thp} · commit ${commit || '?'}`,
    '',
    `Command: \`${env}npm run bench\`${quick ? ' (BENCH_QUICK: a smoke run, too few samples to quote)' : ''}`,
  ].join('\n');
}

async function main() {
  const t0 = Date.now();
  const targets = prepare();
  const parts = [machineInfo()];
  if (cfg.tables.includes('1')) parts.push(renderTable1(await table1(targets), targets));
  if (cfg.tables.includes('2')) parts.push(renderTable2(await table2(targets), targets));
  if (cfg.tables.includes('3')) parts.push(renderTable3(await table3()));
  parts.push(`_Whole run: ${f0((Date.now() - t0) / 1000)} s._`);
  const md = `${parts.join('\n\n')}\n`;
  process.stdout.write(`\n${md}`);
  fs.writeFileSync(cfg.out, md);
  log(`written to ${path.relative(process.cwd(), cfg.out) || cfg.out}`);
}

main().then(
  () => shutdown(0),
  (err) => {
    if (shuttingDown) return; // interrupted: the workers' deaths are ours
    log(`failed: ${err && err.stack}`);
    shutdown(1);
  },
);

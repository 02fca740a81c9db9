'use strict';
/**
 * `node --expose-gc bench/density.js [one] [storm]`: the high-density tables of the README.
 *
 *   one    One start at a time: `Virtiofsd.start()` → ready (pino at info into /dev/null)
 *          against bench/lean-launcher.c (`serve`: listen, posix_spawn with the socket at fd 3,
 *          read stderr until the ready line), interleaved start by start in one run, per
 *          daemon (bench/ready-standin.c built without libc: ready at once; and both real
 *          virtiofsd dialects), at two parent RSS levels (one fresh worker process per level;
 *          the C launcher holds the same RSS). The floor (see floorStart) runs beside them.
 *   storm  N daemons started at once, then all stopped, per launcher: ours (`Virtiofsd.start()`
 *          through the public API, Promise.all), the C launcher (`storm`: one epoll over every
 *          stderr pipe), the floor (the addon's listen, spawn and pipe reader called directly:
 *          what any Node launcher on this addon pays, see floorStart) and Node's child_process
 *          (spawn with the socket at fd 3, stderr read with 'data' events). Daemons: both real virtiofsd dialects, and the libc stand-in
 *          logging a line per second (the steady state of a busy host). Each run is a fresh
 *          process; launchers alternate per (N, daemon).
 *
 * A measurement tool: nothing is asserted. Markdown on stdout, progress on stderr. Knobs:
 *   BENCH_ONE_ITERS (default 60), BENCH_ONE_RSS_MB (default 100,4096), BENCH_ONE_DAEMONS (standin,legacy,rust)
 *   BENCH_STORM_N (default 100,500,1000), BENCH_STORM_DAEMONS (default legacy,rust,ticker),
 *   BENCH_STORM_HOLD_MS (default 5000: how long all run before they are measured and stopped),
 *   BENCH_STORM_ROUNDS (default 1: runs per launcher, medians reported), BENCH_STORM_LAUNCHERS
 *   (default c,ours,floor,cp, and before when BENCH_BEFORE is set)
 *   BENCH_BEFORE: another checkout of this package (built: dist/ and its addon), measured as
 *   "before" in the same run, interleaved with ours and the C launcher (one: start by start;
 *   storm: run by run)
 *   VIRTIOFSD_LEGACY, VIRTIOFSD_RUST (default: found as the tests find them, test/helpers/daemons.js)
 *   BENCH_TMPDIR: where sockets and shared directories go (default /dev/shm when it is a tmpfs: see common.js)
 */
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./common.js');

const LAUNCHER = path.join(c.binDir, 'lean-launcher');
const TICKER = path.join(c.binDir, 'ready-standin');
const MARKER = 'Waiting for vhost-user socket connection';
const log = (s) => process.stderr.write(`[density] ${s}\n`);
const list = (name, dflt) =>
  (process.env[name] || dflt)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** [binary, dialect] of a daemon name; the stand-ins take the Rust command line and ignore it. */
function daemonOf(name, dir) {
  if (name === 'legacy' || name === 'rust') return [c.virtiofsdPath(name), name];
  if (name === 'standin') return [c.rawReadyStandin(dir), 'rust'];
  if (name === 'ticker') return [TICKER, 'rust'];
  throw new Error(`unknown daemon ${name}`);
}

const DAEMON_LABEL = {
  standin: 'stand-in, ready at once (no libc)',
  legacy: 'legacy C virtiofsd',
  rust: 'Rust virtiofsd',
  ticker: 'stand-in logging 1 line/s',
};

/**
 * The floor of any Node launcher built on this addon: listen, spawn with the socket at fd 3 and
 * a stderr pipe, read the pipe until the ready line - the addon's primitives called directly,
 * with no option checks, no logger, no lifecycle. What `ours` costs above it is the library's;
 * what it costs above the C launcher is Node's (the event loop, Node-API, promises).
 * Resolves to `{ stop, pgid }` once the daemon is ready: stop() kills the group, waits for the
 * exit and (unless `waitGroup` is false: a storm checks every group in one /proc walk) for the
 * rest of the group, then removes the socket.
 */
function floorStart(native, bin, args, socketPath, env) {
  const sock = native.listenUnix(socketPath);
  let exited;
  const gone = new Promise((r) => (exited = r));
  let child;
  try {
    child = native.spawn({
      file: bin,
      argv: [bin, ...args],
      env,
      fds: ['null', 'null', 'pipe', sock.fd],
      newProcessGroup: true,
      onExit: () => exited(),
    });
  } finally {
    native.closeFd(sock.fd);
  }
  const stop = async (waitGroup = true) => {
    child.signal('SIGKILL', { group: true });
    await gone;
    // As stop() does: the daemon's forked helpers (the legacy daemon's sandbox child) gone too.
    while (waitGroup && child.groupAlive()) await new Promise((r) => setImmediate(r));
    native.unlinkSocket(sock);
  };
  return new Promise((resolve, reject) => {
    let buf = '';
    let ready = false;
    const reader = native.readPipe(child.pipes[2], (chunk) => {
      if (chunk === null) {
        if (!ready) reject(new Error('exited before ready'));
        return;
      }
      if (ready) return;
      buf += chunk.toString('latin1');
      if (buf.includes(MARKER)) {
        ready = true;
        buf = '';
        resolve({
          pgid: child.pid,
          stop: async (waitGroup) => {
            reader.close();
            await stop(waitGroup);
          },
        });
      }
    });
  });
}

// ---- one start at a time --------------------------------------------------------------------

/** The library of BENCH_BEFORE (another checkout, built: its dist/ and build/Release), or null. */
function beforeLib() {
  const dir = process.env.BENCH_BEFORE;
  return dir ? c.lib(path.resolve(dir)) : null;
}

async function oneWorker(rssMB, iters) {
  const pino = require(require.resolve('pino', { paths: [c.root] }));
  const { native, virtiofsd } = c.lib();
  const { Virtiofsd, buildVirtiofsdArgs } = virtiofsd;
  const before = beforeLib();
  const keep = c.ballast(rssMB);
  const dir = fs.mkdtempSync(path.join(c.tmpBase(), 'vfd-one-'));
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const rows = [];
  try {
    for (const name of list('BENCH_ONE_DAEMONS', 'standin,legacy,rust')) {
      const [bin, dialect] = daemonOf(name, dir);
      const args = buildVirtiofsdArgs({
        dialect,
        sourcePath: dir,
        cache: 'auto',
        syslog: false,
        debug: false,
        extraArgs: [],
      });
      const launcher = cp.spawn(LAUNCHER, ['serve', '--rss-mb', String(rssMB), '--', bin, ...args], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let pending;
      let buf = '';
      launcher.stdout.on('data', (d) => {
        buf += d;
        for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) pending(Number(buf.slice(0, i)));
      });
      const cStart = (p) => new Promise((resolve) => ((pending = resolve), launcher.stdin.write(`${p}\n`)));
      const libOnce = (V, tag) => async (i) => {
        const d = new V({
          path: bin,
          dialect,
          socketPath: path.join(dir, `${tag}${i}.sock`),
          sourcePath: dir,
          logger,
        });
        const t0 = c.nowUs();
        await d.start();
        const t = c.nowUs() - t0;
        await d.stop();
        return t;
      };
      // The alternatives, run one after the other in an order that rotates start by start, so
      // that none always follows another's teardown.
      const floorOnce = async (i) => {
        const t0 = c.nowUs();
        const { stop } = await floorStart(native, bin, args, path.join(dir, `f${i}.sock`));
        const t = c.nowUs() - t0;
        await stop();
        return t;
      };
      const alts = [
        { key: 'ours', once: libOnce(Virtiofsd, 'o'), t: [] },
        { key: 'floor', once: floorOnce, t: [] },
        ...(before ? [{ key: 'before', once: libOnce(before.virtiofsd.Virtiofsd, 'b'), t: [] }] : []),
        { key: 'c', once: (i) => cStart(path.join(dir, `c${i}.sock`)), t: [] },
      ];
      for (let i = 0; i < 5; i++) for (const a of alts) await a.once(-1 - i); // warm-up
      for (let i = 0; i < iters; i++) {
        for (let k = 0; k < alts.length; k++) {
          const a = alts[(i + k) % alts.length];
          a.t.push(await a.once(i));
        }
      }
      launcher.stdin.end();
      await new Promise((r) => launcher.on('exit', r));
      const stats = (a) => ({ ...c.summary(a), p90: c.pct(c.sorted(a), 90) });
      const row = { name, rssKB: c.rssKB() };
      for (const a of alts) row[a.key] = stats(a.t);
      rows.push(row);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  keep.length = 0;
  return rows;
}

function runWorker(args) {
  return new Promise((resolve, reject) => {
    const w = cp.fork(__filename, args, { execArgv: ['--expose-gc'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let result;
    w.on('message', (m) => (result = m));
    w.on('exit', (code) =>
      code === 0 && result ? resolve(result) : reject(new Error(`worker ${args.join(' ')} exited ${code}`)),
    );
  });
}

async function one() {
  const iters = Number(process.env.BENCH_ONE_ITERS || 60);
  const withBefore = Boolean(process.env.BENCH_BEFORE);
  const out = [];
  out.push('### One start: `Virtiofsd.start()` → ready against the C launcher', '');
  out.push(
    `Load average before: ${c.loadAverages()}; ${os.cpus().length} CPUs; sockets in ${c.tmpBase()}.${withBefore ? ` "before": ${path.resolve(process.env.BENCH_BEFORE)}.` : ''}`,
    '',
  );
  const b = (s) => (withBefore ? s : '');
  out.push(
    `| parent RSS | daemon | ours median µs |${b(' before median µs |')} floor median µs | C median µs | ours ×C |` +
      `${b(' before ×C |')} floor ×C | ours − floor, µs | floor − C, µs | ours p90 µs | C p90 µs | n |`,
  );
  out.push(
    `| --- | --- | ---: |${b(' ---: |')} ---: | ---: | ---: |${b(' ---: |')} ---: | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const mb of list('BENCH_ONE_RSS_MB', '100,4096').map(Number)) {
    log(`one: ${mb} MiB, ${iters} starts per launcher per daemon (load ${os.loadavg()[0].toFixed(2)})`);
    const rows = await runWorker(['one-worker', String(mb), String(iters)]);
    for (const r of rows) {
      const ratio = (x) => `${(x.median / r.c.median).toFixed(2)}×`;
      out.push(
        `| ${mb >= 1024 ? `${mb / 1024} GiB` : `${mb} MiB`} (${Math.round(r.rssKB / 1024)} MiB) | ${DAEMON_LABEL[r.name]} | ` +
          `${r.ours.median.toFixed(0)} |${b(` ${r.before?.median.toFixed(0)} |`)} ${r.floor.median.toFixed(0)} | ` +
          `${r.c.median.toFixed(0)} | ${ratio(r.ours)} |${b(` ${r.before && ratio(r.before)} |`)} ${ratio(r.floor)} | ` +
          `${(r.ours.median - r.floor.median).toFixed(0)} | ${(r.floor.median - r.c.median).toFixed(0)} | ` +
          `${r.ours.p90.toFixed(0)} | ${r.c.p90.toFixed(0)} | ${r.ours.n} |`,
      );
    }
  }
  out.push('', `Load average after: ${c.loadAverages()}.`);
  return out.join('\n');
}

// ---- boot storm -----------------------------------------------------------------------------

/** Heap, RSS, fds and threads after a full GC. */
function footprint() {
  for (let i = 0; i < 3; i++) global.gc?.();
  return { rssKB: c.rssKB(), heap: process.memoryUsage().heapUsed, fds: c.fdCount(), threads: c.threadCount() };
}

/** One /proc walk per tick until no live process of any of the groups is left (bounded). */
async function groupsGone(pgids, native) {
  const deadline = Date.now() + 10000;
  while (native.liveGroups(pgids).some(Boolean) && Date.now() < deadline) await c.sleep(2);
}

async function stormWorker(mode, name, n, holdMs) {
  const pino = require(require.resolve('pino', { paths: [c.root] }));
  const { native, virtiofsd } = mode === 'before' ? beforeLib() : c.lib();
  const { Virtiofsd, buildVirtiofsdArgs } = virtiofsd;
  const dir = fs.mkdtempSync(path.join(c.tmpBase(), 'vfd-storm-'));
  const [bin, dialect] = daemonOf(name, dir);
  const env = { ...process.env, STANDIN_TICK_MS: '1000' };
  const args = buildVirtiofsdArgs({
    dialect,
    sourcePath: dir,
    cache: 'auto',
    syslog: false,
    debug: false,
    extraArgs: [],
  });
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  // Everything loaded and opened once, outside the measurement.
  {
    const w = new Virtiofsd({ path: bin, dialect, socketPath: path.join(dir, 'w.sock'), sourcePath: dir, logger, env });
    await w.start();
    await w.stop();
  }
  const base = footprint();
  const cpu0 = process.cpuUsage();
  const t0 = c.nowUs();
  let stopAll;
  let lines = 0;
  if (mode === 'ours' || mode === 'before') {
    const ds = [];
    for (let i = 0; i < n; i++) {
      ds.push(
        new Virtiofsd({
          path: bin,
          dialect,
          socketPath: path.join(dir, `d${i}.sock`),
          sourcePath: dir,
          logger,
          env,
          startTimeoutMs: 60000,
        }),
      );
    }
    await Promise.all(ds.map((d) => d.start()));
    stopAll = () => Promise.all(ds.map((d) => d.stop()));
  } else if (mode === 'floor') {
    const stops = await Promise.all(
      Array.from({ length: n }, (_, i) => floorStart(native, bin, args, path.join(dir, `d${i}.sock`), env)),
    );
    stopAll = async () => {
      await Promise.all(stops.map(({ stop }) => stop(false)));
      await groupsGone(
        stops.map((x) => x.pgid),
        native,
      );
    };
  } else {
    const children = [];
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const sock = native.listenUnix(path.join(dir, `d${i}.sock`));
        const child = cp.spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe', sock.fd], detached: true, env });
        native.closeFd(sock.fd);
        const exited = new Promise((r) => child.on('exit', r));
        children.push({ child, exited, sock });
        return new Promise((resolve, reject) => {
          let buf = '';
          let ready = false;
          child.stderr.setEncoding('utf8');
          child.stderr.on('data', (s) => {
            buf += s;
            for (let k; (k = buf.indexOf('\n')) >= 0; buf = buf.slice(k + 1)) {
              lines++;
              if (!ready && buf.slice(0, k).includes(MARKER)) ((ready = true), resolve());
            }
          });
          child.on('exit', () => reject(new Error('exited before ready')));
        });
      }),
    );
    stopAll = async () => {
      for (const { child } of children) process.kill(-child.pid, 'SIGKILL');
      await Promise.all(children.map((x) => x.exited));
      await groupsGone(
        children.map((x) => x.child.pid),
        native,
      );
      for (const { sock } of children) native.unlinkSocket(sock);
    };
  }
  const readyMs = (c.nowUs() - t0) / 1e3;
  const cpu1 = process.cpuUsage(cpu0);
  const hwmKB = c.statusField('VmHWM');
  await c.sleep(holdMs);
  const held = footprint();
  const s0 = c.nowUs();
  const sc0 = process.cpuUsage();
  await stopAll();
  const stopMs = (c.nowUs() - s0) / 1e3;
  const sc1 = process.cpuUsage(sc0);
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    readyMs,
    cpuPerStartUs: (cpu1.user + cpu1.system) / n,
    hwmMB: hwmKB / 1024,
    rssPerDaemonKB: (held.rssKB - base.rssKB) / n,
    heapPerDaemon: (held.heap - base.heap) / n,
    fdsPerDaemon: (held.fds - base.fds) / n,
    threadsAdded: held.threads - base.threads,
    stopMs,
    stopCpuMs: (sc1.user + sc1.system) / 1e3,
    lines,
  };
}

/** The C launcher's storm: its own figures, from its stdout. */
function stormLean(name, n, holdMs, dir) {
  const [bin, dialect] = daemonOf(name, dir);
  const { buildVirtiofsdArgs } = c.lib().virtiofsd;
  const args = buildVirtiofsdArgs({
    dialect,
    sourcePath: dir,
    cache: 'auto',
    syslog: false,
    debug: false,
    extraArgs: [],
  });
  return new Promise((resolve, reject) => {
    const p = cp.spawn(LAUNCHER, ['storm', String(n), dir, '--', bin, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, STANDIN_TICK_MS: '1000' },
    });
    const baseKB = c.statusField('VmRSS', p.pid);
    let out = '';
    let held = false;
    p.stdout.on('data', (d) => {
      out += d;
      const ls = out.split('\n').filter(Boolean);
      if (ls.length === 1 && !held) {
        held = true;
        setTimeout(() => p.stdin.write('stop\n'), holdMs);
      }
    });
    p.on('exit', (code) => {
      const ls = out
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ').map(Number));
      if (code !== 0 || ls.length < 3) return reject(new Error(`lean-launcher storm exited ${code}: ${out}`));
      const [[readyMs, cpuMs, hwmKB], [rssKB, fds], [stopMs, stopCpuMs]] = ls;
      resolve({
        readyMs,
        cpuPerStartUs: (cpuMs * 1e3) / n,
        hwmMB: hwmKB / 1024,
        rssPerDaemonKB: (rssKB - baseKB) / n,
        heapPerDaemon: NaN,
        fdsPerDaemon: (fds - 3) / n, // beyond 0, 1, 2
        threadsAdded: 0, // single-threaded
        stopMs,
        stopCpuMs,
      });
    });
  });
}

/** The median of each numeric field over runs of one launcher. */
function medianRun(runs) {
  const out = { runs: runs.length };
  for (const k of Object.keys(runs[0])) out[k] = c.pct(c.sorted(runs.map((r) => r[k])), 50);
  return out;
}

async function storm() {
  const holdMs = Number(process.env.BENCH_STORM_HOLD_MS || 5000);
  const rounds = Number(process.env.BENCH_STORM_ROUNDS || 1);
  const launchers = list(
    'BENCH_STORM_LAUNCHERS',
    process.env.BENCH_BEFORE ? 'c,ours,floor,before,cp' : 'c,ours,floor,cp',
  );
  const out = [];
  const nofile = cp.execSync('sh -c "ulimit -n"').toString().trim();
  out.push('### Boot storm: N daemons started at once, then all stopped', '');
  out.push(
    `Load average before: ${c.loadAverages()}; RLIMIT_NOFILE ${nofile}; ${os.cpus().length} CPUs; sockets in ${c.tmpBase()}; ${rounds} round(s), launchers in a rotating ` +
      `order, each run a fresh process, medians over the rounds.` +
      (process.env.BENCH_BEFORE ? ` "before": ${path.resolve(process.env.BENCH_BEFORE)}.` : ''),
    '',
  );
  out.push(
    '| daemon | N | launcher | all ready, ms | ×C | manager CPU / start, µs | ×C | peak manager RSS, MiB | ' +
      'per running daemon: RSS KB | JS heap bytes | fds | threads added | stop all, ms | ×C |',
  );
  out.push('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const label = {
    c: 'C (epoll)',
    ours: '**ours**',
    before: 'before',
    floor: 'floor (addon only)',
    cp: 'child_process',
  };
  for (const n of list('BENCH_STORM_N', '100,500,1000').map(Number)) {
    for (const name of list('BENCH_STORM_DAEMONS', 'legacy,rust,ticker')) {
      const runs = Object.fromEntries(launchers.map((l) => [l, []]));
      let failed = null;
      for (let round = 0; round < rounds && !failed; round++) {
        for (let k = 0; k < launchers.length && !failed; k++) {
          const l = launchers[(round + k) % launchers.length];
          const dir = fs.mkdtempSync(path.join(c.tmpBase(), 'vfd-stormc-'));
          log(`storm: ${name} × ${n}, ${l}, round ${round + 1}/${rounds} (load ${os.loadavg()[0].toFixed(2)})`);
          try {
            runs[l].push(
              l === 'c'
                ? await stormLean(name, n, holdMs, dir)
                : await runWorker(['storm-worker', l, name, String(n), String(holdMs)]),
            );
          } catch (err) {
            log(`storm ${name} × ${n} (${l}) failed: ${err.message}`);
            failed = `${l}: ${err.message.split('\n')[0]}`;
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      if (failed) {
        out.push(`| ${DAEMON_LABEL[name]} | ${n} | failed: ${failed} |`);
        continue;
      }
      const r = Object.fromEntries(launchers.map((l) => [l, medianRun(runs[l])]));
      for (const l of launchers) {
        const x = r[l];
        const f = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '—');
        const ratio = (v, base) => (r.c ? `${(v / base).toFixed(2)}×` : '—');
        out.push(
          `| ${DAEMON_LABEL[name]} | ${n} | ${label[l]} | ${f(x.readyMs)} | ${ratio(x.readyMs, r.c?.readyMs)} | ` +
            `${f(x.cpuPerStartUs)} | ${ratio(x.cpuPerStartUs, r.c?.cpuPerStartUs)} | ${f(x.hwmMB)} | ${f(x.rssPerDaemonKB, 1)} | ` +
            `${f(x.heapPerDaemon)} | ${f(x.fdsPerDaemon, 2)} | ${f(x.threadsAdded)} | ${f(x.stopMs)} | ${ratio(x.stopMs, r.c?.stopMs)} |`,
        );
      }
    }
  }
  out.push('', `Load average after: ${c.loadAverages()}.`);
  return out.join('\n');
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'one-worker' || cmd === 'storm-worker') {
    const result =
      cmd === 'one-worker'
        ? await oneWorker(Number(rest[0]), Number(rest[1]))
        : await stormWorker(rest[0], rest[1], Number(rest[2]), Number(rest[3]));
    await new Promise((resolve) => process.send(result, resolve));
    return;
  }
  const what = process.argv.slice(2);
  const parts = [
    `${new Date().toISOString()} · Node ${process.version} · Linux ${os.release()} · ${os.cpus()[0].model} ×${os.cpus().length} · ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
  ];
  if (what.length === 0 || what.includes('one')) parts.push(await one());
  if (what.length === 0 || what.includes('storm')) parts.push(await storm());
  console.log(parts.join('\n\n'));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

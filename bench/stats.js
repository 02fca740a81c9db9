'use strict';
/**
 * `node --expose-gc bench/stats.js`: the cost of reading 1,000 live daemons (issue 18) — the
 * stats() sweep and a Prometheus scrape — against the same reading written with Node's fs.
 *
 * N daemons (bench/ready-standin.c, the libc build: it prints the ready line and pauses; one
 * process, 4 fds each) are started through `Virtiofsd.start()`, without cgroups, fdCheckIntervalMs
 * 0 (no timer reads them meanwhile). Then, interleaved round by round (the order rotates):
 *
 *   ours: stats()   `await Promise.all(ds.map((d) => d.stats()))`: one /proc walk for the groups,
 *                   one addon call for their members (src/process-stats.ts)
 *   ours: scrape    `await registry.metrics()` of daemonMetrics() tracking all N (one stats()
 *                   sweep, then prom-client formats 5 families x N series and the rest)
 *   JS fs, sync     the same reading with readdirSync/readFileSync/statSync: the /proc walk
 *                   (every /proc/N/stat, for the process group), then per member the fd count
 *                   (stat of /proc/P/fd), /proc/P/stat and /proc/P/limits
 *   JS fs, async    the same with fs.promises and Promise.all (the thread pool)
 *
 * A second table: the fd count of ONE process holding many fds (a daemon that pins one O_PATH fd
 * per guest inode), by the directory's size (what we do, Linux >= 6.2) and by listing it.
 *
 * A measurement tool: nothing is asserted. Markdown on stdout, progress on stderr. Knobs:
 *   BENCH_STATS_N (default 1000), BENCH_STATS_ROUNDS (default 30), BENCH_STATS_FDS (default 19000)
 */
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./common.js');

const N = Number(process.env.BENCH_STATS_N || 1000);
const ROUNDS = Number(process.env.BENCH_STATS_ROUNDS || 30);
const MANY_FDS = Number(process.env.BENCH_STATS_FDS || 19000);
const STANDIN = path.join(c.binDir, 'ready-standin');
const log = (s) => process.stderr.write(`[stats] ${s}\n`);

/** The fields a reading gives per daemon, as stats() does (no cgroup). */
function blank() {
  return { openFds: 0, fdLimit: 0, rssBytes: 0, threads: 0, cpuTimeUsec: 0, processes: 0 };
}

const PAGE = 4096;
const TICK_US = 1e6 / 100;

/** pgrp, rss pages, threads, utime + stime from a /proc/P/stat text. */
function parseStat(text) {
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    state: f[0],
    pgrp: Number(f[2]),
    cpu: Number(f[11]) + Number(f[12]),
    threads: Number(f[17]),
    rss: Number(f[21]),
  };
}

const limitOf = (text) => {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
};

/** The JS fs reading, synchronous: walk /proc once, then each member's fd count and limits. */
function jsSync(pgids) {
  const want = new Map(pgids.map((p, i) => [p, i]));
  const out = pgids.map(blank);
  for (const name of fs.readdirSync('/proc')) {
    if (name < '1' || name > '9') continue;
    let st;
    try {
      st = parseStat(fs.readFileSync(`/proc/${name}/stat`, 'latin1'));
    } catch {
      continue;
    }
    const i = want.get(st.pgrp);
    if (i === undefined || st.state === 'Z') continue;
    const o = out[i];
    try {
      o.openFds += fs.statSync(`/proc/${name}/fd`).size;
      o.fdLimit = limitOf(fs.readFileSync(`/proc/${name}/limits`, 'latin1'));
    } catch {
      continue;
    }
    o.rssBytes += st.rss * PAGE;
    o.threads += st.threads;
    o.cpuTimeUsec += st.cpu * TICK_US;
    o.processes++;
  }
  return out;
}

/** The same through fs.promises (the thread pool), everything in flight at once. */
async function jsAsync(pgids) {
  const fsp = fs.promises;
  const want = new Map(pgids.map((p, i) => [p, i]));
  const out = pgids.map(blank);
  const names = (await fsp.readdir('/proc')).filter((n) => n >= '1' && n <= '9');
  const stats = await Promise.all(
    names.map((n) =>
      fsp.readFile(`/proc/${n}/stat`, 'latin1').then(
        (t) => [n, parseStat(t)],
        () => null,
      ),
    ),
  );
  await Promise.all(
    stats.map(async (s) => {
      if (!s) return;
      const [name, st] = s;
      const i = want.get(st.pgrp);
      if (i === undefined || st.state === 'Z') return;
      const o = out[i];
      try {
        const [fd, limits] = await Promise.all([
          fsp.stat(`/proc/${name}/fd`),
          fsp.readFile(`/proc/${name}/limits`, 'latin1'),
        ]);
        o.openFds += fd.size;
        o.fdLimit = limitOf(limits);
      } catch {
        return;
      }
      o.rssBytes += st.rss * PAGE;
      o.threads += st.threads;
      o.cpuTimeUsec += st.cpu * TICK_US;
      o.processes++;
    }),
  );
  return out;
}

function fmt(x, digits = 1) {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

async function main() {
  const pino = require(require.resolve('pino', { paths: [c.root] }));
  const { Registry } = require(require.resolve('prom-client', { paths: [c.root] }));
  const { virtiofsd } = c.lib();
  const { daemonMetrics } = require(path.join(c.root, 'dist', 'metrics.js'));
  const { Virtiofsd } = virtiofsd;
  if (!fs.existsSync(STANDIN)) throw new Error(`${STANDIN} is missing: run npm run build:helpers`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfd-stats-'));
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const ds = Array.from(
    { length: N },
    (_, i) =>
      new Virtiofsd({
        path: STANDIN,
        dialect: 'rust',
        socketPath: path.join(dir, `d${i}.sock`),
        sourcePath: dir,
        logger,
        startTimeoutMs: 60000,
        fdCheckIntervalMs: 0,
      }),
  );
  const registry = new Registry();
  const metrics = daemonMetrics({ registry });
  log(`starting ${N} daemons`);
  const pids = await Promise.all(ds.map((d) => d.start()));
  for (let i = 0; i < N; i++) metrics.track(ds[i], { id: `vm-${i}` });
  const procEntries = fs.readdirSync('/proc').filter((n) => n >= '1' && n <= '9').length;

  // The readings agree before they are timed.
  const ours = await Promise.all(ds.map((d) => d.stats()));
  const sync = jsSync(pids);
  const asyncRead = await jsAsync(pids);
  for (let i = 0; i < N; i++) {
    for (const k of ['openFds', 'fdLimit', 'processes', 'threads']) {
      if (ours[i][k] !== sync[i][k] || ours[i][k] !== asyncRead[i][k]) {
        throw new Error(`daemon ${i}: ${k} ours ${ours[i][k]}, JS sync ${sync[i][k]}, JS async ${asyncRead[i][k]}`);
      }
    }
  }
  const text = await registry.metrics();
  const series = text.split('\n').filter((l) => l && !l.startsWith('#')).length;

  const alts = {
    'ours: stats()': () => Promise.all(ds.map((d) => d.stats())),
    'ours: scrape (registry.metrics())': () => registry.metrics(),
    'JS fs, sync': async () => jsSync(pids),
    'JS fs, async (fs.promises)': () => jsAsync(pids),
  };
  const times = Object.fromEntries(Object.keys(alts).map((k) => [k, []]));
  const cpu = Object.fromEntries(Object.keys(alts).map((k) => [k, 0]));
  const names = Object.keys(alts);
  log(`${ROUNDS} rounds`);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length];
      global.gc?.();
      const cpu0 = process.cpuUsage();
      const t0 = c.nowUs();
      await alts[name]();
      times[name].push(c.nowUs() - t0);
      const used = process.cpuUsage(cpu0);
      cpu[name] += used.user + used.system;
    }
  }

  log('stopping');
  await Promise.all(ds.map((d) => d.stop()));
  metrics.close();

  // One process with many fds: its size vs listing it.
  log(`one process with ${MANY_FDS} fds`);
  const holder = cp.spawn(
    process.execPath,
    [
      '-e',
      `const fs=require('fs');for(let i=0;i<${MANY_FDS};i++)fs.openSync('/dev/null','r');process.stdout.write('ready\\n');setInterval(()=>{},1e6)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((resolve) => holder.stdout.once('data', resolve));
  const { native } = c.lib();
  const one = { 'processFacts() (size of /proc/P/fd)': [], 'readdirSync(/proc/P/fd).length': [] };
  let counts = {};
  for (let r = 0; r < 20; r++) {
    let t0 = c.nowUs();
    counts.size = native.processFacts([holder.pid])[0].fds;
    one['processFacts() (size of /proc/P/fd)'].push(c.nowUs() - t0);
    t0 = c.nowUs();
    counts.listed = fs.readdirSync(`/proc/${holder.pid}/fd`).length;
    one['readdirSync(/proc/P/fd).length'].push(c.nowUs() - t0);
  }
  holder.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });

  const oursMedian = c.summary(times['ours: stats()']).median;
  const rows = names.map((name) => {
    const s = c.summary(times[name]);
    return `| ${name} | ${fmt(s.median / 1000)} | ${fmt(c.pct(c.sorted(times[name]), 90) / 1000)} | ${fmt(s.max / 1000)} | ${fmt(cpu[name] / ROUNDS / 1000)} | ${fmt(s.median / N, 2)} | ${fmt(s.median / oursMedian, 2)}× | ${s.n} |`;
  });
  const head = `Node ${process.version} · Linux ${os.release()} · ${os.cpus()[0].model.trim()} ×${os.cpus().length} · ${new Date().toISOString()}`;
  process.stdout.write(
    [
      `### Reading ${N} live daemons (no cgroup)`,
      '',
      head,
      `· ${procEntries} processes on the host · the scrape: ${series} samples, ${text.length} bytes`,
      '',
      '| reading | median ms | p90 ms | max ms | CPU ms | µs / daemon | ×stats() | rounds |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      `### The fd count of one process holding ${counts.size} fds (listed: ${counts.listed})`,
      '',
      '| how | median µs | p90 µs |',
      '| --- | ---: | ---: |',
      ...Object.entries(one).map(
        ([name, t]) => `| ${name} | ${fmt(c.summary(t).median)} | ${fmt(c.pct(c.sorted(t), 90))} |`,
      ),
      '',
    ].join('\n'),
  );
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});

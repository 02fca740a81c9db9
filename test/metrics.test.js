'use strict';
/**
 * Prometheus metrics (issue 18): daemonMetrics() on a prom-client registry, scraped as text and
 * read back by a Prometheus exposition parser (parse-prometheus-text-format), against both real
 * virtiofsd dialects and the nydusd stand-in (its own /api/v1/metrics counters). Loading the
 * package never loads prom-client; without it, daemonMetrics() says how to install it.
 *
 * The parser reads gauges and counters with their labels; it flattens a labelled histogram into
 * one unlabelled sample (a limitation of the package), so the histograms' labelled _count lines
 * are read from the text, after the parser has accepted the whole of it.
 *
 * Run: node --test --test-concurrency=1 test/metrics.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const parsePrometheus = require('parse-prometheus-text-format');
const { Registry } = require('prom-client');

const { Virtiofsd, daemonMetrics, InvalidOptionError, NYDUS_STATS_FOPS } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const n = require('./helpers/nydusd.js');
const { captureLogger, script, tempDir } = require('./helpers/util.js');

const ROOT = path.join(__dirname, '..');

/** Scrape `registry`: the parsed families by name, and the text. */
async function scrape(registry) {
  const text = await registry.metrics();
  const families = new Map(parsePrometheus(text).map((f) => [f.name, f]));
  return { text, families };
}

/** The samples of `family` whose labels include `labels`. */
function samples(families, family, labels = {}) {
  const f = families.get(family);
  assert.ok(f, `family ${family} is in the scrape`);
  return f.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

/** The one value of `family` with `labels`, as a number. */
function value(families, family, labels) {
  const found = samples(families, family, labels);
  assert.equal(found.length, 1, `one ${family} sample for ${JSON.stringify(labels)}: ${JSON.stringify(found)}`);
  return Number(found[0].value);
}

/** A labelled histogram's _count, from the text (see the file comment). */
/**
 * d.stats() taken between two scrapes of the open_fds and threads gauges that agree with each
 * other (up to 50 tries, 50 ms apart), with those gauges' values as `scraped`.
 */
async function bracketed(registry, d, labels) {
  const gauges = async () => {
    const { families } = await scrape(registry);
    return {
      open_fds: value(families, 'virtiofs_daemon_open_fds', labels),
      threads: value(families, 'virtiofs_daemon_threads', labels),
    };
  };
  let last;
  for (let i = 0; i < 50; i++) {
    const before = await gauges();
    const stats = await d.stats();
    const after = await gauges();
    last = { before, after };
    if (before.open_fds === after.open_fds && before.threads === after.threads) return { ...stats, scraped: after };
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the daemon's fds and threads never held still across two scrapes: ${JSON.stringify(last)}`);
}

function histogramCount(text, family, labels) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${family}_count{`) && want.every((w) => l.includes(w)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

function setup(t) {
  const dir = tempDir(t);
  const source = path.join(dir, 'src');
  fs.mkdirSync(source);
  let i = 0;
  const make = (dialect, opts = {}) => {
    const d = new Virtiofsd({
      path: h.virtiofsdPath(dialect),
      socketPath: path.join(dir, `v${i++}.sock`),
      sourcePath: source,
      logger: captureLogger().logger,
      ...opts,
    });
    t.after(() => d.stop().catch(() => {}));
    return d;
  };
  return { dir, source, make };
}

const GAUGES = ['open_fds', 'fd_limit', 'resident_memory_bytes', 'cpu_seconds_total', 'threads'];

describe('prom-client is optional', () => {
  test('loading the package does not load prom-client', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});` +
          `process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('prom-client'))))`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });

  test("without prom-client, daemonMetrics() throws ERR_PROM_CLIENT_MISSING saying 'npm install prom-client'", (t) => {
    // prom-client made unresolvable, as when it is not installed (an optional peer dependency).
    const hide = path.join(tempDir(t), 'hide.js');
    fs.writeFileSync(
      hide,
      `const Module = require('module'); const resolve = Module._resolveFilename;
       Module._resolveFilename = function (request, ...rest) {
         if (request === 'prom-client') throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
         return resolve.call(this, request, ...rest);
       };`,
    );
    const r = spawnSync(
      process.execPath,
      [
        '-r',
        hide,
        '-e',
        `const { daemonMetrics } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
         try { daemonMetrics({ registry: { registerMetric() {}, removeSingleMetric() {} } }); console.log('no error'); }
         catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, name: e.name })); }`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const err = JSON.parse(r.stdout);
    assert.equal(err.code, 'ERR_PROM_CLIENT_MISSING');
    assert.equal(err.name, 'VirtiofsDaemonError');
    assert.match(err.message, /npm install prom-client/);
  });

  test('bad options are InvalidOptionErrors naming them', () => {
    for (const [opts, option] of [
      [{ registry: {} }, 'registry'],
      [{ registry: new Registry(), prefix: 'bad prefix' }, 'prefix'],
      [{ registry: new Registry(), buckets: [1, 0.5] }, 'buckets'],
      [{ registry: new Registry(), nydusdTimeoutMs: 0 }, 'nydusdTimeoutMs'],
    ]) {
      assert.throws(
        () => daemonMetrics(opts),
        (e) => e instanceof InvalidOptionError && e.option === option,
      );
    }
    const m = daemonMetrics({ registry: new Registry() });
    assert.throws(
      () => m.track({}, { id: 'x' }),
      (e) => e instanceof InvalidOptionError && e.option === 'daemon',
    );
  });
});

describe('per-daemon gauges, lifecycle counters and histograms, on both real virtiofsd dialects', () => {
  test('families, labels and values as stats() and /proc say; a stopped daemon leaves the gauges', async (t) => {
    const e = setup(t);
    const registry = new Registry();
    const metrics = daemonMetrics({ registry });
    t.after(() => metrics.close());
    const ds = { legacy: e.make('legacy'), rust: e.make('rust') };
    for (const [dialect, d] of Object.entries(ds)) metrics.track(d, { id: `vm-${dialect}` });
    const pids = {};
    for (const [dialect, d] of Object.entries(ds)) pids[dialect] = await d.start();

    const { text, families } = await scrape(registry);
    for (const name of [
      ...GAUGES,
      'starts_total',
      'start_failures_total',
      'exits_total',
      'scrape_errors_total',
      'start_duration_seconds',
      'stop_duration_seconds',
      'nydusd_read_bytes_total',
      'nydusd_fop_hits_total',
    ]) {
      assert.ok(families.has(`virtiofs_daemon_${name}`), `family virtiofs_daemon_${name}`);
    }
    assert.equal(families.get('virtiofs_daemon_open_fds').type, 'GAUGE');
    assert.equal(families.get('virtiofs_daemon_cpu_seconds_total').type, 'COUNTER');
    assert.equal(families.get('virtiofs_daemon_start_duration_seconds').type, 'HISTOGRAM');
    for (const [dialect, d] of Object.entries(ds)) {
      const labels = { kind: 'virtiofsd', dialect, id: `vm-${dialect}` };
      for (const g of GAUGES)
        assert.equal(samples(families, `virtiofs_daemon_${g}`, labels).length, 1, `${g} ${dialect}`);
      // What the gauges say is what stats() says. A daemon just started may still open an fd or a
      // thread, so stats() is bracketed by two scrapes and compared once both scrapes agree.
      const stats = await bracketed(registry, d, labels);
      assert.equal(stats.scraped.open_fds, stats.openFds);
      assert.equal(stats.scraped.threads, stats.threads);
      assert.equal(value(families, 'virtiofs_daemon_fd_limit', labels), stats.fdLimit);
      const members = h.liveGroupMembers(pids[dialect]).map((m) => m.pid);
      assert.equal(
        value(families, 'virtiofs_daemon_fd_limit', labels),
        Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${members.at(-1)}/limits`, 'utf8'))[1]),
      );
      assert.ok(value(families, 'virtiofs_daemon_resident_memory_bytes', labels) > 0);
      assert.equal(value(families, 'virtiofs_daemon_starts_total', { kind: 'virtiofsd', dialect }), 1);
      assert.equal(histogramCount(text, 'virtiofs_daemon_start_duration_seconds', { kind: 'virtiofsd', dialect }), 1);
    }

    await ds.legacy.stop();
    const after = await scrape(registry);
    assert.deepEqual(samples(after.families, 'virtiofs_daemon_open_fds', { dialect: 'legacy' }), []);
    assert.equal(samples(after.families, 'virtiofs_daemon_open_fds', { dialect: 'rust' }).length, 1);
    assert.equal(
      value(after.families, 'virtiofs_daemon_exits_total', {
        kind: 'virtiofsd',
        dialect: 'legacy',
        requested: 'true',
        signal: 'SIGKILL',
        code: '',
      }),
      1,
    );
    assert.equal(histogramCount(after.text, 'virtiofs_daemon_stop_duration_seconds', { dialect: 'legacy' }), 1);
  });

  test('an exit nobody asked for: exits_total{requested="false"} by signal; failed starts by error code', async (t) => {
    const e = setup(t);
    const registry = new Registry();
    const metrics = daemonMetrics({ registry, prefix: 'vfd_' });
    t.after(() => metrics.close());
    const d = e.make('rust');
    metrics.track(d, { id: 'killed' });
    const pid = await d.start();
    const quit = new Promise((resolve) => {
      const poll = setInterval(() => d.pid === 0 && (clearInterval(poll), resolve()), 10);
    });
    process.kill(pid, 'SIGKILL');
    await quit;
    // A start refused for its options, and one whose daemon exits at once.
    const bad = e.make('rust', { threadPoolSize: -1 });
    metrics.track(bad, { id: 'bad-option' });
    await assert.rejects(bad.start());
    const exits = script(path.join(e.dir, 'exits'), 'echo "virtiofsd: nothing to serve" >&2; exit 3');
    const dies = e.make('rust', { path: exits, dialect: 'rust' });
    metrics.track(dies, { id: 'dies' });
    await assert.rejects(dies.start());

    const { families } = await scrape(registry);
    assert.equal(value(families, 'vfd_exits_total', { kind: 'virtiofsd', requested: 'false', signal: 'SIGKILL' }), 1);
    assert.equal(value(families, 'vfd_start_failures_total', { kind: 'virtiofsd', code: 'ERR_INVALID_OPTION' }), 1);
    assert.equal(value(families, 'vfd_start_failures_total', { kind: 'virtiofsd', code: 'ERR_DAEMON_EXITED' }), 1);
    assert.deepEqual(samples(families, 'vfd_open_fds'), [], 'no daemon runs: no gauge');
  });

  test('close() removes every family from the registry', async () => {
    const registry = new Registry();
    daemonMetrics({ registry }).close();
    assert.equal((await registry.metrics()).trim(), '');
    // ...and the names are free again.
    daemonMetrics({ registry }).close();
  });
});

describe("nydusd's own counters (GET /api/v1/metrics of each RAFS mount), through the stand-in", () => {
  n.standinTest(
    'each RAFS mount: read bytes, open files and per-operation hits, errors and time, by id, mountpoint and fop',
    'the counters come from the NYDUSD_STANDIN_FS_METRICS knob',
    async (t) => {
      const fop = Object.fromEntries(NYDUS_STATS_FOPS.map((name, i) => [name, i]));
      const hits = new Array(15).fill(0);
      hits[fop.lookup] = 7;
      hits[fop.read] = 3;
      const errors = new Array(15).fill(0);
      errors[fop.open] = 2;
      const latency = new Array(15).fill(0);
      latency[fop.read] = 1500000;
      const w = n.world(t, {
        env: {
          NYDUSD_STANDIN_FS_METRICS: JSON.stringify({
            data_read: 12288,
            nr_opens: 1,
            fop_hits: hits,
            fop_errors: errors,
            fop_cumulative_latency_total: latency,
          }),
        },
      });
      const d = w.make();
      const registry = new Registry();
      const metrics = daemonMetrics({ registry });
      t.after(() => metrics.close());
      metrics.track(d, { id: 'pod-7' });
      await d.start();
      const { bootstrap, config } = n.rafsImage(w.dir);
      const mountpoint = '/rafs/layer1/lowerdir';
      await d.mount({ source: bootstrap, mountpoint, config });

      const { families } = await scrape(registry);
      const labels = { id: 'pod-7', mountpoint };
      assert.equal(value(families, 'virtiofs_daemon_nydusd_read_bytes_total', labels), 12288);
      assert.equal(value(families, 'virtiofs_daemon_nydusd_open_files', labels), 1);
      assert.equal(value(families, 'virtiofs_daemon_nydusd_fop_hits_total', { ...labels, fop: 'lookup' }), 7);
      assert.equal(value(families, 'virtiofs_daemon_nydusd_fop_hits_total', { ...labels, fop: 'read' }), 3);
      assert.equal(value(families, 'virtiofs_daemon_nydusd_fop_errors_total', { ...labels, fop: 'open' }), 2);
      assert.equal(
        value(families, 'virtiofs_daemon_nydusd_fop_latency_seconds_total', { ...labels, fop: 'read' }),
        1.5,
      );
      assert.equal(samples(families, 'virtiofs_daemon_nydusd_fop_hits_total', labels).length, 15, 'every fop');
      // The shared directory (passthrough_fs at /containers) has no such counters: only the RAFS mount.
      assert.deepEqual(
        [...new Set(families.get('virtiofs_daemon_nydusd_read_bytes_total').metrics.map((m) => m.labels.mountpoint))],
        [mountpoint],
      );
      // The process gauges too, labelled with nydusd's command-line dialect.
      assert.equal(
        samples(families, 'virtiofs_daemon_open_fds', { kind: 'nydusd', dialect: 'virtiofs', id: 'pod-7' }).length,
        1,
      );

      await d.umount(mountpoint);
      const after = await scrape(registry);
      assert.deepEqual(samples(after.families, 'virtiofs_daemon_nydusd_read_bytes_total'), [], 'unmounted: gone');
      await d.stop();
    },
  );

  n.test('Nydusd.fsMetrics() answers [] before any RAFS mount, and ERR_DAEMON_NOT_RUNNING when stopped', async (t) => {
    const w = n.world(t);
    const d = w.make();
    await d.start();
    assert.deepEqual(await d.fsMetrics(), []);
    await d.stop();
    await assert.rejects(d.fsMetrics(), { code: 'ERR_DAEMON_NOT_RUNNING' });
  });
});

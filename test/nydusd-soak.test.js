'use strict';
/**
 * 200 start/stop cycles of Nydusd (src/nydusd.ts), 4 at a time: fds, zombies, processes, sockets
 * and RSS back to baseline.
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-soak.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { Nydusd } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { countingLogger, exists, processIdentity, settleRss, sleep } = require('./helpers/util.js');
const { DAEMON, REAL, assertNothingLeft, daemonEnv, killMentioning, test } = require('./helpers/nydusd.js');

// ---------------------------------------------------------------------------------------------
// Stress

describe('200 start/stop cycles', () => {
  test('fds, zombies, processes, sockets and RSS back to baseline', { timeout: 600000 }, async (t) => {
    const TOTAL = 200;
    // 4 daemons at a time keep the run short (each stand-in start is a Node start-up, ~150-250 ms);
    // NYDUSD_TEST_PARALLEL=1 runs them one after the other.
    const PARALLEL = Math.max(1, Number(process.env.NYDUSD_TEST_PARALLEL) || 4);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nyds-'));
    t.after(() => {
      killMentioning(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const env = daemonEnv(null);
    const { logger, counter } = countingLogger();
    const slots = Array.from({ length: PARALLEL }, (_, i) => ({
      sockPath: path.join(dir, `v${i}.sock`),
      apiSockPath: path.join(dir, `a${i}.sock`),
    }));
    const pgids = new Set();
    // pid@starttime per start: over 200 cycles the kernel may hand out a pid again.
    const processes = new Set();
    const durations = [];
    const live = new Set();
    t.after(async () => {
      for (const d of live) await Promise.race([d.stop().catch(() => {}), sleep(15000)]);
    });

    async function cycle(slot) {
      const t0 = Date.now();
      const quits = [];
      const d = new Nydusd({
        path: DAEMON,
        ...slot,
        sourcePath: share,
        env,
        logger,
        stopTimeoutMs: REAL ? 300 : 5000,
      });
      live.add(d);
      const pid = await d.start((e) => quits.push(e));
      pgids.add(pid);
      processes.add(processIdentity(pid));
      assert.ok(pid > 0);
      assert.equal(d.pid, pid);
      await d.stop();
      live.delete(d);
      assert.equal(d.pid, 0);
      assert.equal(quits.length, 1, `onQuit once per daemon (pid ${pid})`);
      assert.equal(quits[0].requested, true);
      if (!REAL) assert.deepEqual(quits[0], { code: 0, signal: null, requested: true, known: true });
      assert.equal(exists(slot.sockPath) || exists(slot.apiSockPath), false, `sockets of pid ${pid} removed`);
      durations.push(Date.now() - t0);
    }

    // Warm-up: load the addon, pino's children, the http agent..., then take the baselines.
    await cycle(slots[0]);
    await sleep(100);
    const fd0 = h.fdCount();
    const rss0 = settleRss();

    let next = 0;
    const t0 = Date.now();
    await Promise.all(
      slots.map(async (slot) => {
        while (next < TOTAL) {
          next++;
          await cycle(slot);
        }
      }),
    );
    const ms = Date.now() - t0;

    const fd1 = await h
      .waitFor(() => (h.fdCount() <= fd0 ? h.fdCount() : 0), { timeoutMs: 3000 })
      .catch(() => h.fdCount());
    const rss1 = settleRss();
    const sorted = [...durations].sort((a, b) => a - b);
    const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    const summary =
      `${TOTAL} cycles, ${PARALLEL} at a time, in ${ms} ms (per cycle: p50 ${pct(0.5)} p95 ${pct(0.95)} max ${pct(1)} ms); ` +
      `fds ${fd0} -> ${fd1}; RSS ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MiB (${rss1 - rss0 >= 0 ? '+' : ''}${(rss1 - rss0).toFixed(1)}); ` +
      `${counter.n} log records`;
    t.diagnostic(summary);
    assert.equal(durations.length, TOTAL + 1);
    assert.equal(processes.size, TOTAL + 1, 'a new process each cycle');
    assert.ok(fd1 <= fd0, `fd count ${fd0} -> ${fd1}:\n${h.fdTable().join('\n')}`);
    assert.deepEqual(h.liveMembersOfGroups(pgids), [], "live processes of the daemons' groups");
    await assertNothingLeft(0, dir);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f !== 'share'),
      [],
      'no socket file left',
    );
    assert.ok(rss1 - rss0 < 40, `RSS grew by ${(rss1 - rss0).toFixed(1)} MiB over ${TOTAL} cycles`);
    if (ms > 60000) t.diagnostic(`WARNING: the cycles took ${ms} ms (> 60 s)`);
  });
});

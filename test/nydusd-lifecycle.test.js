'use strict';
/**
 * Nydusd (src/nydusd.ts) behind the VirtiofsDaemon contract: the full cycle (start, mount RAFS,
 * umount, stop) and how it ends: stop() and onQuit, SIGTERM ignored, external signals, restart,
 * concurrent stops, stop() during start().
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-lifecycle.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');

const { SHARED_MOUNTPOINT, DaemonStartError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { isReaped, isRunning, isSocket, rejection, sleep } = require('./helpers/util.js');
const {
  REAL,
  assertNothingLeft,
  assertSocketsGone,
  collection,
  rafsImage,
  standinTest,
  test,
  tryConnect,
  world,
} = require('./helpers/nydusd.js');

// ---------------------------------------------------------------------------------------------
// The full cycle

test('start -> mount rafs -> umount -> stop: pid, requests, sockets, processes, onQuit', async (t) => {
  const w = world(t);
  const { bootstrap, config } = rafsImage(w.dir);
  const d = w.make();
  assert.equal(d.pid, 0, 'pid before start');

  const pid = await d.start(w.onQuit);
  assert.ok(Number.isInteger(pid) && pid > 0, `pid ${pid}`);
  assert.equal(d.pid, pid, 'd.pid while running');
  const st = h.procStat(pid);
  assert.ok(st && st.state !== 'Z', 'the daemon runs');
  assert.equal(st.ppid, process.pid, 'it is our child');
  assert.equal(st.pgrp, pid, 'in a process group of its own');
  assert.ok(isSocket(w.sockPath), 'vhost-user socket bound');
  assert.ok(isSocket(w.apiSockPath), 'API socket bound');
  assert.equal(await tryConnect(w.apiSockPath), 'connected');

  // passthrough_fs at /containers from sourcePath, before start resolved.
  assert.equal(SHARED_MOUNTPOINT, '/containers');
  let coll = await collection(w.apiSockPath);
  assert.equal(coll['/containers']?.backend_type, 'PassthroughFs', JSON.stringify(coll));

  const mp = '/rafs/0123456789abcdef/lowerdir';
  await d.mount({ source: bootstrap, mountpoint: mp, config });
  coll = await collection(w.apiSockPath);
  assert.equal(coll[mp]?.backend_type, 'Rafs', JSON.stringify(coll));
  await d.umount(mp);
  coll = await collection(w.apiSockPath);
  assert.equal(coll[mp], undefined, 'rafs gone from backend_collection');
  assert.ok(coll['/containers'], 'the share is still mounted');

  if (!REAL) {
    const reqs = w.requests();
    assert.equal(reqs.length, 3, JSON.stringify(reqs, null, 1));
    const [share, rafs, del] = reqs;
    assert.equal(share.method, 'POST');
    assert.equal(share.mountpoint, '/containers');
    assert.deepEqual(JSON.parse(share.body), { fs_type: 'passthrough_fs', source: w.share, config: '' });
    assert.equal(share.status, 204);
    assert.equal(rafs.method, 'POST');
    assert.equal(rafs.mountpoint, mp);
    assert.deepEqual(JSON.parse(rafs.body), { fs_type: 'rafs', source: bootstrap, config });
    assert.equal(rafs.status, 204);
    assert.equal(del.method, 'DELETE');
    assert.equal(del.mountpoint, mp);
    assert.equal(del.body, null, 'DELETE carries no body');
    assert.equal(del.status, 204);
  }

  const t0 = Date.now();
  await d.stop();
  const stopMs = Date.now() - t0;
  assert.equal(d.pid, 0, 'pid after stop');
  // onQuit has run by the time stop() resolves, once, with the sockets already removed.
  assert.equal(w.quits.length, 1, `onQuit calls: ${JSON.stringify(w.quits)}`);
  assert.equal(w.quits[0].exit.requested, true);
  assert.equal(w.quits[0].sockExisted, false, 'sockPath removed before onQuit');
  assert.equal(w.quits[0].apiSockExisted, false, 'apiSockPath removed before onQuit');
  if (!REAL) assert.deepEqual(w.quits[0].exit, { code: 0, signal: null, requested: true, known: true });
  assertSocketsGone(w);
  await assertNothingLeft(pid, w.dir);
  await sleep(100);
  assert.equal(w.quits.length, 1, 'onQuit exactly once');
  t.diagnostic(`stop took ${stopMs} ms`);
});

// ---------------------------------------------------------------------------------------------
// Stop and quit

describe('stop and onQuit', () => {
  standinTest(
    'a nydusd that ignores SIGTERM -> SIGKILL after stopTimeoutMs; onQuit {signal: SIGKILL, requested: true}',
    'needs NYDUSD_STANDIN_IGNORE_SIGTERM',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_IGNORE_SIGTERM: '1' } });
      const d = w.make({ stopTimeoutMs: 500 });
      const pid = await d.start(w.onQuit);
      const t0 = Date.now();
      await d.stop();
      const ms = Date.now() - t0;
      assert.ok(ms >= 450, `stop resolved after ${ms} ms, before stopTimeoutMs`);
      assert.ok(ms < 3500, `stop took ${ms} ms`);
      assert.equal(w.quits.length, 1, JSON.stringify(w.quits));
      assert.deepEqual(w.quits[0].exit, { code: null, signal: 'SIGKILL', requested: true, known: true });
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.ok(
        w.records.some((r) => /ignored SIGTERM/.test(r.msg)),
        'the escalation is logged',
      );
      await sleep(100);
      assert.equal(w.quits.length, 1);
      t.diagnostic(`stop took ${ms} ms`);
    },
  );

  test('an external SIGKILL -> onQuit once {code: null, signal: SIGKILL, requested: false}; later stop() resolves; restart works', async (t) => {
    const w = world(t);
    const d = w.make();
    const pid = await d.start(w.onQuit);
    const killed = h.procStat(pid);
    const quitSeen = new Promise((resolve) => {
      const iv = setInterval(() => {
        if (w.quits.length) {
          clearInterval(iv);
          resolve();
        }
      }, 5);
    });
    process.kill(pid, 'SIGKILL');
    await Promise.race([quitSeen, sleep(5000)]);
    assert.equal(w.quits.length, 1, 'onQuit called');
    assert.deepEqual(w.quits[0].exit, { code: null, signal: 'SIGKILL', requested: false, known: true });
    assert.equal(w.quits[0].sockExisted, false, 'sockPath removed before onQuit');
    assert.equal(w.quits[0].apiSockExisted, false, 'apiSockPath removed before onQuit');
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    await d.stop();
    await d.stop();
    assert.equal(w.quits.length, 1, 'still once');
    const err = await rejection(d.umount('/rafs/x/lowerdir'), 'umount after the crash');
    assert.equal(err.code, 'ERR_DAEMON_NOT_RUNNING');

    // The same instance starts again (Kata restarts a crashed daemon), with a fresh onQuit.
    const quits2 = [];
    const pid2 = await d.start((e) => quits2.push(e));
    // A new process, not the killed one: that one is reaped. (Not pid2 !== pid, which a recycled
    // pid could break without anything being wrong.)
    assert.ok(pid2 > 0, `pid ${pid2}`);
    assert.ok(isReaped(killed), `the killed daemon is still there: ${JSON.stringify(h.procStat(pid))}`);
    assert.ok(isRunning(h.procStat(pid2) ?? { pid: pid2 }), `the restarted daemon ${pid2} does not run`);
    await d.stop();
    assert.equal(quits2.length, 1);
    assert.equal(quits2[0].requested, true);
    assert.equal(w.quits.length, 1, 'the first onQuit is not called again');
    assertSocketsGone(w);
    await assertNothingLeft(pid2, w.dir);
  });

  standinTest(
    'an external SIGTERM (graceful exit 0) -> onQuit {code: 0, requested: false}',
    'the real nydusd does not exit on SIGTERM without a VMM',
    async (t) => {
      const w = world(t);
      const d = w.make();
      const pid = await d.start(w.onQuit);
      process.kill(pid, 'SIGTERM');
      await h.waitFor(() => w.quits.length > 0, { timeoutMs: 5000, what: 'onQuit' });
      assert.deepEqual(w.quits[0].exit, { code: 0, signal: null, requested: false, known: true });
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      await d.stop();
      assert.equal(w.quits.length, 1);
    },
  );

  test('concurrent stop() calls share one stop; stop() when never started resolves', async (t) => {
    const w = world(t);
    const d = w.make();
    await d.stop();
    await Promise.all([d.stop(), d.stop()]);
    assert.equal(w.ran(), 0);
    const pid = await d.start(w.onQuit);
    const p1 = d.stop();
    const p2 = d.stop();
    const results = await Promise.allSettled([p1, p2]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
    assert.equal(w.quits.length, 1);
    assert.equal(w.quits[0].exit.requested, true);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    await d.stop();
    assert.equal(w.quits.length, 1);
  });

  test('stop() while start() is still validating: once both settle, nothing runs', async (t) => {
    const w = world(t);
    const d = w.make({ path: w.wrapper });
    const starting = d.start(w.onQuit);
    // Called synchronously: start() is still in its (async) validation, nothing is spawned yet.
    const stopping = d.stop();
    let stopResolvedWhileRunning = false;
    await stopping.then(() => {
      stopResolvedWhileRunning = d.pid !== 0;
    });
    const started = await Promise.allSettled([starting]);
    // Either start rejected, or stop() waited for it and then stopped what it made.
    await sleep(300);
    const pid = started[0].status === 'fulfilled' ? started[0].value : 0;
    const running = d.pid;
    if (running) await d.stop();
    assert.equal(
      running,
      0,
      `stop() resolved (daemon pid at that moment: ${stopResolvedWhileRunning ? 'running' : 'none yet'}) and then start() ` +
        `${started[0].status === 'fulfilled' ? `resolved pid ${pid}` : 'rejected'}: nydusd is left running after stop() resolved`,
    );
    if (pid) await assertNothingLeft(pid, w.dir);
    assertSocketsGone(w);
  });

  test('stop() during the readiness wait: start rejects, nothing runs, no onQuit', async (t) => {
    const w = world(t);
    const d = w.make();
    const starting = d.start(w.onQuit);
    const pid = await h.waitFor(() => d.pid, { timeoutMs: 5000, what: 'the spawn' });
    await d.stop();
    const r = await Promise.allSettled([starting]);
    assert.equal(d.pid, 0);
    if (r[0].status === 'rejected') {
      assert.ok(
        r[0].reason instanceof DaemonStartError,
        `DaemonStartError expected: ${r[0].reason && r[0].reason.stack}`,
      );
      assert.deepEqual(w.quits, []);
    } else {
      // A start that won the race is stopped all the same: onQuit reports the stop.
      assert.equal(w.quits.length, 1);
    }
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });
});

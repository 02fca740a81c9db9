'use strict';
/**
 * Nydusd's mount() and umount() (src/nydusd.ts): the /rafs/<id>/lowerdir rule checked before any
 * request, the API's errors as NydusApiError, not running, and a slow API.
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-mount.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { NydusClient, InvalidOptionError, NydusApiError, VirtiofsDaemonError } = require('../dist/index.js');
const { rejection, sleep } = require('./helpers/util.js');
const {
  REAL,
  assertNothingLeft,
  assertSocketsGone,
  collection,
  rafsImage,
  standinTest,
  test,
  world,
} = require('./helpers/nydusd.js');

// ---------------------------------------------------------------------------------------------
// mount / umount

describe('mount and umount', () => {
  test('mountpoint rule: anything but /rafs/<id>/lowerdir is refused before any request', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    await d.start(w.onQuit);
    const before = await collection(w.apiSockPath);
    const requestsBefore = w.requests().length;

    const bad = [
      '/rafs/a+b/lowerdir',
      '/rafs//lowerdir',
      '/rafs/x',
      '/rafs/x/lowerdir/',
      '/rafs/x/upperdir',
      '/rafs/a b/lowerdir',
      '/rafs/a/b/lowerdir',
      '/rafs/é/lowerdir',
      '/containers',
      '/',
      'rafs/x/lowerdir',
      './rafs/x/lowerdir',
      '/rafs/x\0/lowerdir',
      '/rafs/x/lowerdir\0',
      '',
      '/rafs/x/lowerdir\n',
    ];
    for (const mountpoint of bad) {
      for (const [what, p] of [
        ['mount', () => d.mount({ source: bootstrap, mountpoint, config })],
        ['umount', () => d.umount(mountpoint)],
      ]) {
        const err = await rejection(p(), `${what}(${JSON.stringify(mountpoint)})`);
        assert.ok(err instanceof InvalidOptionError, `${what}(${JSON.stringify(mountpoint)}): ${err && err.stack}`);
        assert.equal(err.code, 'ERR_INVALID_OPTION');
        assert.equal(err.option, 'mountpoint', `${what}(${JSON.stringify(mountpoint)})`);
      }
    }
    // Also the other fields of MountOption.
    const mp = '/rafs/ok/lowerdir';
    for (const [opt, option] of [
      [{ source: '', mountpoint: mp, config }, 'source'],
      [{ source: `${bootstrap}\0`, mountpoint: mp, config }, 'source'],
      [{ source: bootstrap, mountpoint: mp }, 'config'],
      [{ source: bootstrap, mountpoint: mp, config: { version: 2 } }, 'config'],
      [{ mountpoint: mp, config }, 'source'],
    ]) {
      const err = await rejection(d.mount(opt), `mount(${JSON.stringify(opt)})`);
      assert.ok(err instanceof InvalidOptionError, `mount(${JSON.stringify(opt)}): ${err && err.stack}`);
      assert.equal(err.option, option);
    }
    for (const opt of [undefined, null]) {
      const err = await rejection(d.mount(opt), `mount(${opt})`);
      assert.ok(err instanceof InvalidOptionError, `mount(${opt}): ${err && err.stack}`);
    }

    assert.equal(
      w.requests().length,
      requestsBefore,
      `no request reached nydusd: ${JSON.stringify(w.requests().slice(requestsBefore))}`,
    );
    assert.deepEqual(Object.keys(await collection(w.apiSockPath)), Object.keys(before));

    // Valid ids: word characters, '.', '-', '_'.
    for (const id of ['a.b-c_d', 'A9', '0123456789abcdef0123456789abcdef', 'x', 'sha256-ab.cd_EF']) {
      const m = `/rafs/${id}/lowerdir`;
      await d.mount({ source: bootstrap, mountpoint: m, config });
      const coll = await collection(w.apiSockPath);
      assert.equal(coll[m]?.backend_type, 'Rafs', `${m}: ${JSON.stringify(coll)}`);
      await d.umount(m);
      assert.equal((await collection(w.apiSockPath))[m], undefined);
    }
    if (!REAL) {
      const after = w.requests().slice(requestsBefore);
      assert.equal(after.length, 10);
      assert.ok(
        after.every((r) => r.status === 204),
        JSON.stringify(after),
      );
      assert.equal(after[0].mountpoint, '/rafs/a.b-c_d/lowerdir');
    }
    assert.ok(d.pid > 0, 'still running');
  });

  test("ids '.' and '..' are refused: /rafs/../lowerdir would mount outside /rafs", async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    await d.start(w.onQuit);
    const requestsBefore = w.requests().length;
    const accepted = [];
    for (const mountpoint of ['/rafs/../lowerdir', '/rafs/./lowerdir']) {
      const r = await Promise.allSettled([d.mount({ source: bootstrap, mountpoint, config })]);
      if (r[0].status === 'fulfilled') {
        accepted.push(mountpoint);
        await d.umount(mountpoint).catch(() => {});
      } else {
        assert.ok(r[0].reason instanceof InvalidOptionError, `${mountpoint}: ${r[0].reason && r[0].reason.stack}`);
        assert.equal(r[0].reason.option, 'mountpoint');
      }
    }
    const reached = w
      .requests()
      .slice(requestsBefore)
      .map((r) => `${r.method} ${r.mountpoint} -> ${r.status}`);
    assert.deepEqual(
      accepted,
      [],
      `accepted and sent to nydusd (which walks '..' and '.': '/rafs/../lowerdir' is '/lowerdir'): ${JSON.stringify(reached)}`,
    );
  });

  test('API errors: mounting twice -> NydusApiError 500 UNDEFINED; umount of nothing -> NydusApiError', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    const pid = await d.start(w.onQuit);
    const mp = '/rafs/twice/lowerdir';
    await d.mount({ source: bootstrap, mountpoint: mp, config });

    const err = await rejection(d.mount({ source: bootstrap, mountpoint: mp, config }), 'second mount');
    assert.ok(err instanceof NydusApiError, `NydusApiError expected: ${err && err.stack}`);
    assert.ok(err instanceof VirtiofsDaemonError);
    assert.equal(err.code, 'ERR_NYDUS_API');
    assert.equal(err.status, 500);
    assert.equal(err.apiCode, 'UNDEFINED');
    assert.match(err.apiMessage, /already ?exists/i);
    assert.ok(
      err.message.includes(err.apiMessage),
      `message ${JSON.stringify(err.message)} should contain the server's ${JSON.stringify(err.apiMessage)}`,
    );

    const err2 = await rejection(d.umount('/rafs/never-mounted/lowerdir'), 'umount of nothing');
    assert.ok(err2 instanceof NydusApiError, `NydusApiError expected: ${err2 && err2.stack}`);
    assert.equal(err2.code, 'ERR_NYDUS_API');
    assert.equal(err2.status, 500);
    assert.equal(err2.apiCode, 'UNDEFINED');
    assert.match(err2.apiMessage, /doesn't exist|not ?found|does not exist/i);
    assert.ok(err2.message.includes(err2.apiMessage));

    // A bad RAFS source and a bad config are the server's to refuse, with its message.
    const err3 = await rejection(
      d.mount({ source: path.join(w.dir, 'no-such-bootstrap'), mountpoint: '/rafs/nosrc/lowerdir', config }),
      'mount of a missing bootstrap',
    );
    assert.ok(err3 instanceof NydusApiError, `NydusApiError expected: ${err3 && err3.stack}`);
    assert.ok(err3.status >= 400, `status ${err3.status}`);
    const err4 = await rejection(
      d.mount({ source: bootstrap, mountpoint: '/rafs/badcfg/lowerdir', config: '{"nope":1}' }),
      'bad config',
    );
    assert.ok(err4 instanceof NydusApiError, `NydusApiError expected: ${err4 && err4.stack}`);
    assert.ok(err4.status >= 400, `status ${err4.status}`);

    // None of that hurt the daemon; the first mount is still there and can be removed.
    assert.equal(d.pid, pid);
    await d.umount(mp);
    await d.stop();
    assert.equal(w.quits.length, 1);
    assertSocketsGone(w);
  });

  test('mount/umount when not running -> ERR_DAEMON_NOT_RUNNING (never started, starting, stopped)', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const opt = { source: bootstrap, mountpoint: '/rafs/x/lowerdir', config };
    const notRunning = async (p, what) => {
      const err = await rejection(p, what);
      assert.ok(err instanceof VirtiofsDaemonError, `${what}: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_NOT_RUNNING', `${what}: ${err.message}`);
    };
    const d = w.make();
    await notRunning(d.mount(opt), 'mount, never started');
    await notRunning(d.umount(opt.mountpoint), 'umount, never started');

    const starting = d.start(w.onQuit);
    await notRunning(d.mount(opt), 'mount while starting');
    await notRunning(d.umount(opt.mountpoint), 'umount while starting');
    await starting;
    await d.mount(opt);
    await d.umount(opt.mountpoint);
    await d.stop();
    await notRunning(d.mount(opt), 'mount after stop');
    await notRunning(d.umount(opt.mountpoint), 'umount after stop');
    if (!REAL) assert.equal(w.requests().filter((r) => r.mountpoint === opt.mountpoint).length, 2);
  });

  standinTest('a slow API (SLOW_MS=400) still works within the timeouts', 'needs NYDUSD_STANDIN_SLOW_MS', async (t) => {
    const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '400' } });
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    let t0 = Date.now();
    const pid = await d.start(w.onQuit);
    const startMs = Date.now() - t0;
    // At least one probe and the share mount, each delayed by 400 ms.
    assert.ok(startMs >= 800, `start took ${startMs} ms; the knob should have slowed it`);
    t0 = Date.now();
    await d.mount({ source: bootstrap, mountpoint: '/rafs/slow/lowerdir', config });
    const mountMs = Date.now() - t0;
    assert.ok(mountMs >= 400, `mount took ${mountMs} ms`);
    await d.umount('/rafs/slow/lowerdir');
    await d.stop();
    await assertNothingLeft(pid, w.dir);
    assertSocketsGone(w);
    t.diagnostic(`start ${startMs} ms, mount ${mountMs} ms`);
  });

  standinTest(
    'a mount slower than apiTimeoutMs -> NydusApiError ERR_NYDUS_API_TIMEOUT; the daemon keeps running',
    'needs NYDUSD_STANDIN_SLOW_MS',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '300' } });
      const { bootstrap, config } = rafsImage(w.dir);
      const d = w.make({ apiTimeoutMs: 1000 });
      const pid = await d.start(w.onQuit);
      // nydusd serves one request at a time: three requests ahead make our mount wait 1200 ms.
      const other = new NydusClient(w.apiSockPath, { timeoutMs: 5000 });
      t.after(() => other.close());
      const ahead = [other.daemonInfo(), other.daemonInfo(), other.daemonInfo()];
      await sleep(50);
      const mp = '/rafs/late/lowerdir';
      const t0 = Date.now();
      const err = await rejection(d.mount({ source: bootstrap, mountpoint: mp, config }), 'mount');
      const ms = Date.now() - t0;
      assert.ok(err instanceof NydusApiError, `NydusApiError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_NYDUS_API_TIMEOUT');
      assert.ok(ms >= 950 && ms < 2500, `timed out after ${ms} ms`);
      await Promise.all(ahead);
      assert.equal(d.pid, pid, 'still running');
      // The abandoned request may still have been served: nydusd cannot cancel it.
      await sleep(400);
      if ((await collection(w.apiSockPath))[mp]) await d.umount(mp);
      await d.mount({ source: bootstrap, mountpoint: mp, config });
      await d.umount(mp);
      await d.stop();
      await assertNothingLeft(pid, w.dir);
    },
  );
});

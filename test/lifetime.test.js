'use strict';
/**
 * Daemon lifetime against the real daemons (both virtiofsd dialects, nydusd through its
 * stand-in): with the default policy a daemon dies with its manager even when the manager is
 * SIGKILLed or is a worker_thread that is terminated; with lifetime 'survive' it outlives the
 * manager however that ends, and a later manager adopts it (test/adopt.test.js).
 *
 * Run: node --test --test-concurrency=1 test/lifetime.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');
const { Nydusd, Virtiofsd, InvalidOptionError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const {
  KINDS,
  spec,
  startManager,
  startWorkerManager,
  msUntilGroupsGone,
  running,
  connectFrontEnds,
} = require('./helpers/lifetime.js');
const { sleep, tempDir } = require('./helpers/util.js');

/** Every process of every group, for diagnostics. */
function groupMembers(handles) {
  return h
    .liveMembersOfGroups(handles.map((hd) => hd.pgid))
    .map((p) => `${p.pid}(${p.comm})`)
    .join(' ');
}

describe("lifetime 'manager' (the default): the daemons die with their manager", () => {
  test('manager process SIGKILLed: every process of every daemon group is gone within 1 s', async (t) => {
    const daemons = KINDS.map((k) => spec(t, k));
    const { child, handles, exited } = await startManager(t, daemons);
    assert.deepEqual(
      handles.map((hd) => hd.lifetime),
      ['manager', 'manager', 'manager'],
    );
    for (const hd of handles) assert.ok(running(hd), `${hd.kind} ${hd.pid} runs`);
    // Serving a front-end: the legacy daemon has forked its sandbox child by then.
    await connectFrontEnds(t, handles);
    const members = h.liveMembersOfGroups(handles.map((hd) => hd.pgid));
    t.diagnostic(`groups before: ${groupMembers(handles)}`);
    assert.ok(members.length >= 5, `both virtiofsd dialects serve with two processes each: ${groupMembers(handles)}`);

    const since = Date.now();
    child.kill('SIGKILL');
    assert.deepEqual(await exited, { code: null, signal: 'SIGKILL' });
    const ms = await msUntilGroupsGone(handles, since);
    t.diagnostic(`all daemon processes gone ${ms} ms after the manager's SIGKILL`);
    assert.notEqual(ms, null, `still alive 5 s later: ${groupMembers(handles)}`);
    assert.ok(ms <= 1000, `gone only after ${ms} ms`);
  });

  test('manager worker_thread terminated: every process of every daemon group is gone within 1 s', async (t) => {
    const daemons = KINDS.map((k) => spec(t, k));
    const { worker, handles } = await startWorkerManager(t, daemons);
    for (const hd of handles) assert.ok(running(hd), `${hd.kind} ${hd.pid} runs`);
    await connectFrontEnds(t, handles);
    const since = Date.now();
    await worker.terminate();
    const ms = await msUntilGroupsGone(handles, since);
    t.diagnostic(`all daemon processes gone ${ms} ms after worker.terminate()`);
    assert.notEqual(ms, null, `still alive 5 s later: ${groupMembers(handles)}`);
    assert.ok(ms <= 1000, `gone only after ${ms} ms`);
  });
});

describe("lifetime 'survive': the daemons outlive their manager", () => {
  for (const how of ['SIGKILL', 'process.exit()', 'worker terminated']) {
    test(`manager ends by ${how}: every daemon still runs 1 s later, its sockets in place`, async (t) => {
      const daemons = KINDS.map((k) => spec(t, k, { lifetime: 'survive' }));
      let handles;
      if (how === 'worker terminated') {
        const w = await startWorkerManager(t, daemons);
        handles = w.handles;
        await w.worker.terminate();
      } else {
        const m = await startManager(t, daemons, { then: how === 'SIGKILL' ? undefined : 'exit' });
        handles = m.handles;
        if (how === 'SIGKILL') m.child.kill('SIGKILL');
        const end = await m.exited;
        assert.deepEqual(end, how === 'SIGKILL' ? { code: null, signal: 'SIGKILL' } : { code: 0, signal: null });
      }
      await sleep(1000);
      for (const hd of handles) {
        assert.ok(running(hd), `${hd.kind} ${hd.pid} still runs`);
        for (const s of Object.values(hd.sockets))
          assert.ok(fs.lstatSync(s.path).isSocket(), `${s.path} is still a socket`);
      }
      // Take them over and stop them: nothing may be left behind.
      const quits = [];
      for (const hd of handles) {
        const Kind = hd.kind === 'nydusd' ? Nydusd : Virtiofsd;
        const d = await Kind.adopt(hd, { logger: pino({ level: 'silent' }), onQuit: (e) => quits.push(e) });
        await d.stop();
        assert.deepEqual(h.liveGroupMembers(hd.pgid), [], `${hd.kind}: group empty after stop`);
        for (const s of Object.values(hd.sockets)) assert.equal(fs.existsSync(s.path), false, `${s.path} removed`);
      }
      assert.equal(quits.length, 3);
      assert.ok(
        quits.every((q) => q.requested && q.known),
        JSON.stringify(quits),
      );
    });
  }
});

describe('the lifetime option', () => {
  test('anything but manager or survive is ERR_INVALID_OPTION naming lifetime; nothing is created', async (t) => {
    const dir = tempDir(t);
    for (const lifetime of ['forever', null, 1]) {
      const socketPath = path.join(dir, 'v.sock');
      const d = new Virtiofsd({ path: h.virtiofsdPath('legacy'), socketPath, sourcePath: dir, lifetime });
      const err = await d.start().then(
        () => assert.fail('started'),
        (e) => e,
      );
      assert.ok(err instanceof InvalidOptionError, String(err));
      assert.equal(err.option, 'lifetime');
      assert.equal(fs.existsSync(socketPath), false);
      const n = new Nydusd({
        path: KINDS[2].path(),
        sockPath: path.join(dir, 'n.sock'),
        apiSockPath: path.join(dir, 'a.sock'),
        sourcePath: dir,
        lifetime,
      });
      const nerr = await n.start().then(
        () => assert.fail('started'),
        (e) => e,
      );
      assert.equal(nerr.option, 'lifetime');
    }
  });
});

'use strict';
// MockVirtiofsDaemon is what callers use in their own unit tests: it must behave like the
// contract (pid while running, onQuit once, start while running refused) with no process.
const test = require('node:test');
const assert = require('node:assert/strict');
const { MockVirtiofsDaemon, MOCK_PID } = require('../dist/index.js');

test('a nydusd mock follows the contract and records every call', async () => {
  const m = new MockVirtiofsDaemon({ kind: 'nydusd' });
  const quits = [];
  assert.equal(m.pid, 0);
  assert.equal(await m.start((e) => quits.push(e)), MOCK_PID);
  assert.equal(m.pid, 9999999);
  await assert.rejects(m.start(), { code: 'ERR_DAEMON_RUNNING' });
  await m.mount({ source: '/b', mountpoint: '/rafs/x/lowerdir', config: '{}' });
  assert.deepEqual([...m.mounts.keys()], ['/rafs/x/lowerdir']);
  await m.umount('/rafs/x/lowerdir');
  assert.equal(m.mounts.size, 0);
  m.quit({ code: 1, signal: null, requested: false, known: true });
  m.quit();
  assert.deepEqual(quits, [{ code: 1, signal: null, requested: false, known: true }], 'onQuit fires once');
  assert.equal(m.pid, 0);
  await m.stop();
  assert.deepEqual(quits.length, 1, 'stop after the quit calls nothing');
  assert.deepEqual(
    m.calls.map((c) => c[0]),
    ['start', 'start', 'mount', 'umount', 'stop'],
  );
});

test('stop() on a running mock reports a requested exit', async () => {
  const m = new MockVirtiofsDaemon();
  let exit;
  await m.start((e) => (exit = e));
  await m.stop();
  assert.deepEqual(exit, { code: null, signal: 'SIGKILL', requested: true, known: true });
  assert.equal(m.pid, 0);
});

test("a virtiofsd mock (the default, as Kata's virtiofsdMock) refuses mount/umount as Virtiofsd does", async () => {
  const m = new MockVirtiofsDaemon();
  assert.equal(m.kind, 'virtiofsd');
  await m.start();
  await assert.rejects(m.mount({ source: '/b', mountpoint: '/rafs/x/lowerdir', config: '{}' }), {
    name: 'NotSupportedError',
    code: 'ERR_NOT_SUPPORTED',
  });
  await assert.rejects(m.umount('/rafs/x/lowerdir'), { code: 'ERR_NOT_SUPPORTED' });
  assert.equal(m.mounts.size, 0);
  assert.deepEqual(
    m.calls.map((c) => c[0]),
    ['start', 'mount', 'umount'],
    'refused calls are recorded too',
  );
  assert.throws(() => new MockVirtiofsDaemon({ kind: 'qemu' }), { code: 'ERR_INVALID_OPTION', option: 'kind' });
});

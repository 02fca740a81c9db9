'use strict';
/**
 * What a dense host relies on beyond the cgroup option (test/cgroup.test.js): daemon output
 * read by the native pipe reader (no net.Socket per daemon), and many daemons stopping at once
 * sharing their process-group checks instead of walking /proc once per daemon.
 *
 * Run: node --test --test-concurrency=1 test/density.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');

const native = require('../dist/process/native.js');
const { Virtiofsd } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { sleep, tempDir } = require('./helpers/util.js');

const ROOT = path.resolve(__dirname, '..');
const PROBE = path.join(ROOT, 'build', 'helpers', 'probe');
const STANDIN = path.join(ROOT, 'build', 'helpers', 'cgroup-standin');

/** Spawn the probe with a stderr pipe; resolves {child, exit} helpers. */
function probe(args) {
  let exited;
  const exit = new Promise((r) => (exited = r));
  const child = native.spawn({ file: PROBE, argv: [PROBE, ...args], fds: ['null', 'null', 'pipe'], onExit: exited });
  return { child, exit, fd: child.pipes[2] };
}

const fdOpen = (fd) => fs.existsSync(`/proc/self/fd/${fd}`);

describe('readPipe', () => {
  test('delivers everything the child wrote, then null exactly once; the fd is closed after', async () => {
    const { fd, exit } = probe(['--write-stderr', 'hello from the probe']);
    const chunks = [];
    const ended = new Promise((resolve) => {
      native.readPipe(fd, (chunk) => {
        chunks.push(chunk);
        if (chunk === null) resolve();
      });
    });
    await exit;
    await ended;
    await sleep(20);
    assert.equal(chunks.filter((x) => x === null).length, 1, 'one end');
    assert.equal(chunks.at(-1), null, 'the end comes last');
    assert.match(Buffer.concat(chunks.slice(0, -1)).toString(), /hello from the probe/);
    assert.equal(fdOpen(fd), false, `fd ${fd} still open after the end`);
  });

  test('close() stops reading: no callback after it, the fd is closed at once', async () => {
    const { child, fd, exit } = probe(['--write-stderr', 'late', '--sleep', '200']);
    let calls = 0;
    const reader = native.readPipe(fd, () => calls++);
    reader.close();
    reader.close(); // idempotent
    assert.equal(fdOpen(fd), false);
    await exit;
    await sleep(50);
    assert.equal(calls, 0);
    assert.equal(child.exited, true);
  });
});

describe('many daemons stopping at once', () => {
  test('40 daemons: stop-all shares the group checks (fewer checks than daemons); nothing is left', async (t) => {
    const dir = tempDir(t, 'vfd-many-');
    const N = 40;
    const ds = Array.from(
      { length: N },
      (_, i) =>
        new Virtiofsd({
          path: STANDIN,
          dialect: 'rust',
          socketPath: path.join(dir, `${i}.sock`),
          sourcePath: dir,
          logger: pino({ level: 'silent' }),
        }),
    );
    t.after(() => Promise.all(ds.map((d) => d.stop())));
    const pids = await Promise.all(ds.map((d) => d.start()));
    const real = native.liveGroups;
    const calls = [];
    native.liveGroups = (pgids) => (calls.push(pgids.length), real(pgids));
    try {
      await Promise.all(ds.map((d) => d.stop()));
    } finally {
      native.liveGroups = real;
    }
    t.diagnostic(`group checks while ${N} daemons stopped: ${calls.length}, groups per check: ${calls.join(' ')}`);
    assert.ok(calls.length < N, `${calls.length} checks for ${N} daemons: one (or more) per daemon`);
    assert.ok(Math.max(...calls) > 1, 'no check covered more than one group');
    assert.deepEqual(h.liveMembersOfGroups(pids), []);
    assert.deepEqual(h.zombieChildren(), []);
  });
});

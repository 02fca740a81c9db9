'use strict';
// The process layer both daemons stand on (src/daemon-process.ts), with stand-in daemons
// written as shell scripts: the cases no real daemon produces on demand.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');
const { DaemonProcess } = require('../dist/process/daemon-process.js');
const { captureLogger, script, tempDir } = require('./helpers/util.js');

const quiet = pino({ level: 'silent' });

/** A stand-in daemon script in a temp dir removed after t. */
function standIn(t, body) {
  const dir = tempDir(t, 'vfsd-dp-');
  return { dir, file: script(path.join(dir, 'daemon.sh'), body) };
}

test('a descendant that left the group but holds stderr cannot hold the end report', async (t) => {
  // The daemon forks a process into a session of its own (out of reach of the group kill)
  // that keeps our stderr pipe open for 30 s, then exits by itself.
  const { dir, file } = standIn(
    t,
    `setsid sleep 30 &\necho $! > "$(dirname "$0")/escaped.pid"\necho ready >&2\nexit 3`,
  );
  let escaped = 0;
  t.after(() => escaped && process.kill(escaped, 'SIGKILL'));
  const lines = [];
  const t0 = Date.now();
  const proc = new DaemonProcess({
    name: 'stand-in',
    file,
    args: [],
    logger: quiet,
    drainTimeoutMs: 300,
    onLine: (l) => lines.push(l),
  });
  const end = await proc.ended;
  const ms = Date.now() - t0;
  assert.deepEqual(
    { code: end.code, signal: end.signal, requested: end.requested },
    { code: 3, signal: null, requested: false },
  );
  assert.deepEqual(lines, ['ready'], 'what was written before the exit still arrives');
  escaped = Number(fs.readFileSync(path.join(dir, 'escaped.pid'), 'utf8'));
  assert.ok(fs.existsSync(`/proc/${escaped}`), 'the escaped process still holds the pipe: the test proves something');
  assert.ok(ms < 5000, `the end was reported ${ms} ms after the start, not after the 30 s the pipe stays open`);
  t.diagnostic(`end reported after ${ms} ms (drainTimeoutMs 300)`);
});

test('survivors of the group are killed when the leader exits, and the end waits for them', async (t) => {
  const { dir, file } = standIn(t, `sleep 30 &\necho $! > "$(dirname "$0")/member.pid"\nexec 2>&-\nexit 0`);
  const proc = new DaemonProcess({ name: 'stand-in', file, args: [], logger: quiet });
  const end = await proc.ended;
  const member = Number(fs.readFileSync(path.join(dir, 'member.pid'), 'utf8'));
  const stat = fs.existsSync(`/proc/${member}/stat`) ? fs.readFileSync(`/proc/${member}/stat`, 'utf8') : '';
  const state = stat ? stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) : 'gone';
  assert.ok(state === 'gone' || state === 'Z', `the group member is dead (state ${state})`);
  assert.equal(end.groupLeftovers, false);
  assert.equal(end.code, 0);
});

test('stop() escalates to SIGKILL when SIGTERM is ignored, and reports the exit as requested', async (t) => {
  const { file } = standIn(t, `trap '' TERM\necho up >&2\nwhile :; do sleep 1; done`);
  let up;
  const ready = new Promise((r) => (up = r));
  const proc = new DaemonProcess({ name: 'stand-in', file, args: [], logger: quiet, onLine: up });
  await ready;
  const t0 = Date.now();
  const end = await proc.stop({ signal: 'SIGTERM', timeoutMs: 300 });
  const ms = Date.now() - t0;
  assert.deepEqual(
    { code: end.code, signal: end.signal, requested: end.requested },
    { code: null, signal: 'SIGKILL', requested: true },
  );
  assert.ok(ms >= 300, `SIGKILL came after the timeout (${ms} ms)`);
  assert.equal(proc.pid, 0);
  assert.equal(await proc.stop(), end, 'a second stop shares the first');
});

test('the ready line is logged right after the wait it ends resolves, in order with the lines around it', async (t) => {
  const { logger, records } = captureLogger();
  const msgs = () => records.map((r) => r.msg);
  // One write: the lines before, at and after the marker reach us in one chunk.
  const { file } = standIn(t, `printf 'one\\nREADY now\\ntwo\\nthree\\n' >&2\nexec sleep 30`);
  const proc = new DaemonProcess({ name: 'stand-in', file, args: [], logger });
  t.after(() => proc.stop());
  assert.equal(await proc.waitForLine('READY', 5000), 'ready');
  // Its record does not stand between the line and the start that waited for it...
  assert.deepEqual(msgs(), ['one']);
  // ...and follows at the next turn of the loop, the later lines behind it.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(msgs(), ['one', 'READY now', 'two', 'three']);
  assert.deepEqual(proc.lastLines(), ['one', 'READY now', 'two', 'three']);
});

test('a daemon that ends right after its ready line: every line is logged before the end is reported', async (t) => {
  const { logger, records } = captureLogger();
  const { file } = standIn(t, `printf 'READY now\\nlast words\\n' >&2\nexit 4`);
  const proc = new DaemonProcess({ name: 'stand-in', file, args: [], logger });
  const reported = [];
  proc.onEnded((end) => reported.push([end.code, records.map((r) => r.msg)]));
  assert.equal(await proc.waitForLine('READY', 5000), 'ready');
  const end = await proc.ended;
  assert.equal(end.code, 4);
  assert.deepEqual(reported, [[4, ['READY now', 'last words']]]);
});

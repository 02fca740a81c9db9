'use strict';
/**
 * A spawned child watched by its pidfd (src/process/native.ts over native/child.cc): its exit
 * reported once, before the reap; signals that reach it only while it is ours; its process
 * group; a thousand children at once without a thread each, and side by side with
 * child_process. A C probe (test/helpers/probe.c) plays the daemon; /proc tells what became
 * of the processes.
 *
 * Build first: npm run build (node-gyp rebuild, then tsc and the C helpers: node-gyp rebuild
 * empties build/, so the helpers come after it).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');

const u = require('./helpers/util.js');

u.requireProbe();
const native = require('../dist/process/native.js');

const { probePath, sleep, tick } = u;
const SIGNALS = os.constants.signals;

// ---- exit status -------------------------------------------------------------------------

for (const code of [0, 7, 127]) {
  test(`exit code ${code} is reported as {code: ${code}, signal: null}`, async () => {
    const { exit } = await u.runProbe({ args: ['--exit', String(code)] });
    assert.deepEqual(exit, { code, signal: null, coreDumped: false });
  });
}

const deaths = [
  { signal: 'SIGKILL', how: 'signalled by us', args: ['--wait'], send: 'SIGKILL' },
  { signal: 'SIGTERM', how: 'raised by itself', args: ['--kill-self', 'TERM'] },
  { signal: 'SIGSEGV', how: 'segfault', args: ['--segv'] },
];
for (const { signal, how, args, send } of deaths) {
  test(`death by ${signal} (${how}) is reported as {code: null, signal: '${signal}'}`, async () => {
    const { exit } = await u.runProbe({
      args,
      onSpawn: (child) => send && assert.equal(child.signal(send), true),
    });
    assert.deepEqual(exit, { code: null, signal, coreDumped: false });
  });
}

test('onExit runs once, before the reap; the child is reaped when onExit returns', async () => {
  let inExit;
  let calls = 0;
  let child;
  const exit = await new Promise((resolve) => {
    child = native.spawn({
      file: probePath,
      argv: [probePath, '--exit', '3'],
      fds: ['null', 'null', 'null'],
      onExit: (e) => {
        calls++;
        const st = u.procStat(child.pid);
        inExit = { exited: child.exited, pidfdOpen: child.pidfd >= 0, state: st && st.state };
        resolve(e);
      },
    });
  });
  // This continuation is a microtask queued by onExit: it runs after onExit returned.
  const afterReturn = { exited: child.exited, pidfd: child.pidfd };
  await sleep(50);
  assert.deepEqual(exit, { code: 3, signal: null, coreDumped: false });
  assert.deepEqual(
    inExit,
    { exited: false, pidfdOpen: true, state: 'Z' },
    'during onExit the child is an unreaped zombie',
  );
  assert.equal(calls, 1);
  assert.equal(child.exited, true);
  assert.equal(child.pidfd, -1, 'the pidfd is closed after the reap');
  assert.deepEqual(u.zombieChildren(), []);
  assert.deepEqual(
    afterReturn,
    { exited: true, pidfd: -1 },
    'code that runs after onExit returned (a promise resolved in onExit) must see the child reaped',
  );
});

test('signal() returns true while the child lives and false, sending nothing, once it is reaped', async () => {
  let child;
  const { exit } = await u.runProbe({
    args: ['--wait'],
    onSpawn: (c) => {
      child = c;
      assert.equal(c.signal(0), true, 'signal 0 to a live child');
      assert.equal(c.signal('SIGTERM'), true);
    },
  });
  assert.equal(exit.signal, 'SIGTERM');
  await tick();
  assert.equal(child.exited, true);
  assert.equal(child.signal('SIGKILL'), false);
  assert.equal(child.signal(0), false);
  assert.equal(child.signal(SIGNALS.SIGTERM), false);
});

// ---- process groups ----------------------------------------------------------------------

test('a group signal sent from onExit kills the descendants left in the group; groupAlive() then turns false', async (t) => {
  let child;
  let out;
  let inExit;
  const done = u.runProbe({
    args: ['--fork-child', '--wait'],
    newProcessGroup: true,
    onSpawn: (c, o) => {
      child = c;
      out = o;
    },
    onExit: (exit, c) => {
      inExit = { groupAlive: c.groupAlive(), sent: c.signal('SIGKILL', { group: true }) };
    },
  });
  const report = await u.waitForReport(out);
  const grandchild = u.procStat(report.grandchild);
  t.after(() => u.killIfAlive(grandchild));
  assert.equal(report.pgid, child.pid, 'the child leads a new process group');
  assert.equal(grandchild.pgrp, child.pid, 'the grandchild is in that group');
  assert.equal(child.signal('SIGTERM'), true, 'signal the leader only');

  const { exit } = await done;
  assert.equal(exit.signal, 'SIGTERM');
  assert.deepEqual(
    inExit,
    { groupAlive: true, sent: true },
    'in onExit the grandchild is alive and the group signal is sent',
  );
  await u.waitFor(() => u.isZombieOrGone(grandchild.pid), { what: 'the grandchild to die', timeoutMs: 5000 });
  // The orphaned grandchild is reaped by init, which may take a while.
  await u.waitFor(() => !child.groupAlive(), { what: 'groupAlive() to turn false', timeoutMs: 10000 });
});

test('groupAlive() is false after the exit when no descendant is left', async () => {
  const { exit, child } = await u.runProbe({ args: ['--exit', '0'], newProcessGroup: true });
  assert.equal(exit.code, 0);
  await tick();
  assert.equal(child.groupAlive(), false);
});

// ---- many children -----------------------------------------------------------------------

test('1000 children alive at once: no thread per child, every onExit fires, fds and zombies back to baseline', async (t) => {
  const N = 1000;
  await Promise.all(Array.from({ length: 10 }, () => u.runProbe()));
  await fs.promises.stat('/'); // start libuv's thread pool before taking the baseline
  await tick();
  const threadsBefore = u.threadCount();
  const fdsBefore = u.fdCount();
  const sigCgt = u.statusMask('SigCgt');
  const sigIgn = u.statusMask('SigIgn');

  const children = [];
  const exits = [];
  let allExited;
  const all = new Promise((resolve) => {
    allExited = resolve;
  });
  t.after(() => {
    for (const c of children) if (!c.exited) c.signal('SIGKILL');
  });
  for (let i = 0; i < N; i++) {
    children.push(
      native.spawn({
        file: probePath,
        argv: [probePath, '--wait'],
        fds: ['null', 'null', 'null'],
        onExit: (exit) => {
          exits.push(exit);
          if (exits.length === N) allExited();
        },
      }),
    );
  }
  const threadsDuring = u.threadCount();
  assert.equal(new Set(children.map((c) => c.pid)).size, N);
  assert.ok(
    threadsDuring <= threadsBefore + 2,
    `threads grew from ${threadsBefore} to ${threadsDuring} with ${N} live children`,
  );

  for (const c of children) assert.equal(c.signal('SIGTERM'), true);
  await u.withTimeout(all, 20000, `all ${N} onExit calls`).catch((err) => {
    throw new Error(`${err.message}; got ${exits.length}`);
  });
  await tick();
  assert.equal(exits.filter((e) => e.signal === 'SIGTERM' && e.code === null).length, N, 'every child died of SIGTERM');
  assert.ok(children.every((c) => c.exited));
  assert.equal(u.fdCount(), fdsBefore, 'fd count back to baseline');
  assert.deepEqual(u.zombieChildren(), []);
  assert.equal(u.statusMask('SigCgt'), sigCgt, 'caught signals unchanged (no SIGCHLD handler of ours)');
  assert.equal(u.statusMask('SigIgn'), sigIgn, 'ignored signals unchanged');
});

test("child_process.spawn side by side: every 'exit' of theirs and every onExit of ours, with the right codes", async () => {
  const N = 100;
  const theirs = new Map();
  const ours = new Map();
  const pending = [];
  for (let i = 0; i < N; i++) {
    const theirCode = (i % 50) + 1;
    pending.push(
      new Promise((resolve, reject) => {
        const p = cp.spawn(probePath, ['--exit', String(theirCode)], { stdio: 'ignore' });
        p.on('error', reject);
        p.on('exit', (code, signal) => {
          theirs.set(i, { want: theirCode, code, signal });
          resolve();
        });
      }),
    );
    const ourCode = (i % 50) + 100;
    pending.push(
      new Promise((resolve) => {
        native.spawn({
          file: probePath,
          argv: [probePath, '--exit', String(ourCode)],
          fds: ['null', 'null', 'null'],
          onExit: (exit) => {
            ours.set(i, { want: ourCode, ...exit });
            resolve();
          },
        });
      }),
    );
  }
  await u.withTimeout(Promise.all(pending), 20000, 'every exit').catch((err) => {
    throw new Error(
      `${err.message}: ${N - theirs.size} child_process 'exit' events and ${N - ours.size} onExit calls missing`,
    );
  });
  for (const [i, r] of theirs) assert.deepEqual([r.code, r.signal], [r.want, null], `child_process #${i}`);
  for (const [i, r] of ours) assert.deepEqual([r.code, r.signal], [r.want, null], `ours #${i}`);
  await tick();
  assert.deepEqual(u.zombieChildren(), []);
});

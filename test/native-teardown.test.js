'use strict';
/**
 * The teardown policy (native/addon.cc): the children of an environment that ends - a
 * worker_thread terminated, a process that exits with an unref'd child - are killed and
 * reaped; the other environments' children run on. And what an environment's spawn inherits
 * (a worker's own process.env), and ref/unref of a child against the loop.
 *
 * Build first: npm run build (node-gyp rebuild, then tsc and the C helpers: node-gyp rebuild
 * empties build/, so the helpers come after it).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const u = require('./helpers/util.js');

u.requireProbe();

const { runInner } = u;
const workerScript = path.join(__dirname, 'helpers', 'spawn-worker.js');

// ---- worker_threads and env teardown -----------------------------------------------------

/** A spawn-worker.js worker with request(msg) → answer and the exits it reported. */
function startWorker(t) {
  const worker = new Worker(workerScript);
  const waiting = new Map();
  const exits = [];
  const exitWaiters = [];
  let nextId = 1;
  worker.on('message', (msg) => {
    if (msg.event === 'exit') {
      exits.push(msg);
      exitWaiters.splice(0).forEach((f) => f());
      return;
    }
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (msg.event === 'error') w.reject(new Error(msg.error));
    else w.resolve(msg);
  });
  worker.on('error', (err) => {
    for (const w of waiting.values()) w.reject(err);
  });
  t.after(() => worker.terminate());
  return {
    worker,
    exits,
    request(msg) {
      const id = nextId++;
      worker.postMessage({ id, ...msg });
      return u.withTimeout(
        new Promise((resolve, reject) => waiting.set(id, { resolve, reject })),
        5000,
        `worker ${msg.cmd}`,
      );
    },
    async exitOf(pid) {
      for (;;) {
        const e = exits.find((x) => x.pid === pid);
        if (e) return e.exit;
        await new Promise((resolve) => exitWaiters.push(resolve));
      }
    },
  };
}

test("a spawn from a worker_thread gets that worker's process.env by default, as child_process does", async (t) => {
  // A worker's process.env is its own copy: what it sets there never reaches the C environ.
  const w = startWorker(t);
  const mark = `VFD_WORKER_ONLY_${process.pid}`;
  const r = await w.request({ cmd: 'spawn', args: [], setEnv: { [mark]: 'set in the worker' } });
  assert.equal(process.env[mark], undefined, 'setup: the mark exists only in the worker');
  assert.ok(
    r.env.includes(`${mark}=set in the worker`),
    `the child's env has the worker's entry: ${r.env.length} entries`,
  );
  const ours = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
  assert.deepEqual(
    r.env.filter((e) => !e.startsWith(`${mark}=`)).sort(),
    ours.sort(),
    'and otherwise what the worker inherited',
  );
});

test("terminating a worker kills and reaps its children (and a child's group); the other worker's child runs on", async (t) => {
  const a = startWorker(t);
  const b = startWorker(t);
  const a1 = await a.request({ cmd: 'spawn', args: ['--wait'] });
  const a2 = await a.request({ cmd: 'spawn', args: ['--fork-child', '--wait'], newProcessGroup: true });
  const b1 = await b.request({ cmd: 'spawn', args: ['--wait'] });
  const grandchild = u.procStat(a2.grandchild);
  const leftovers = [a1.stat, a2.stat, b1.stat, grandchild];
  t.after(() => leftovers.forEach(u.killIfAlive));
  assert.ok(leftovers.every(u.isRunning), 'setup: all probes run');
  assert.equal(grandchild.pgrp, a2.pid);

  await a.worker.terminate();
  await u.waitFor(() => u.isReaped(a1.stat) && u.isReaped(a2.stat), {
    what: "the terminated worker's children to be killed and reaped",
    timeoutMs: 5000,
  });
  await u.waitFor(() => u.isZombieOrGone(grandchild.pid), {
    what: "the grandchild in the terminated worker's child's group to be killed",
    timeoutMs: 5000,
  });
  assert.deepEqual(a.exits, [], 'no onExit ran for the terminated worker');

  const { exit } = await u.runProbe({ args: ['--exit', '5'] });
  assert.deepEqual(exit, { code: 5, signal: null, coreDumped: false }, 'the main thread still spawns');
  assert.ok(u.isRunning(b1.stat), "the other worker's child still runs");

  const { sent } = await b.request({ cmd: 'signal', pid: b1.pid, signal: 'SIGTERM' });
  assert.equal(sent, true);
  const bExit = await u.withTimeout(b.exitOf(b1.pid), 5000, "the other worker's onExit");
  assert.deepEqual(bExit, { code: null, signal: 'SIGTERM', coreDumped: false });
  await b.worker.terminate();
  await u.waitFor(() => u.isReaped(b1.stat), { what: "the other worker's child to be reaped", timeoutMs: 5000 });
});

// ---- ref / unref -------------------------------------------------------------------------

test("an unref'd child lets Node exit at once; the teardown then kills it", (t) => {
  const started = Date.now();
  const r = runInner(t, 'unref', { probeArgs: ['--wait'] }, ['ignore', 'ignore', 'pipe'], 5000);
  const took = Date.now() - started;
  const stat = u.procStat(r.pid);
  if (stat) t.after(() => u.killIfAlive(stat));
  assert.ok(took < 3000, `node took ${took} ms to exit`);
  assert.equal(r.exit, undefined, 'node exited without waiting for the child');
  // Teardown policy: the environment's live children are SIGKILLed and reaped when it ends.
  assert.ok(u.isZombieOrGone(r.pid), `the unref'd child ${r.pid} outlived the process: ${JSON.stringify(stat)}`);
});

test('ref() after unref() keeps Node running until the child exits', (t) => {
  const r = runInner(t, 'unref', { probeArgs: ['--sleep', '300'], reref: true }, ['ignore', 'ignore', 'pipe']);
  assert.deepEqual(r.exit, { code: 0, signal: null, coreDumped: false }, 'onExit ran before node exited');
});

'use strict';
/**
 * Table 2 worker: `node --expose-gc bench/many-worker.js --mode ours|cp --count N --target PATH`,
 * forked by index.js with an IPC channel; one run per process, so that every run starts from
 * the same fresh parent.
 *
 * {id, cmd: 'run'} → starts N copies of the target (a program that pause()s; /dev/null on 0, 1
 * and 2) one after another, reads what that cost the parent (RSS, JS heap, fds, threads, each
 * after a full GC), SIGKILLs them all and waits for the last exit callback.
 */
const cp = require('node:child_process');
const c = require('./common.js');

const args = c.parseArgs();
const mode = args.mode;
const count = Number(args.count);
const target = args.target;
if (!['ours', 'cp'].includes(mode) || !(count > 0) || !target) {
  process.stderr.write('usage: node --expose-gc bench/many-worker.js --mode ours|cp --count N --target PATH\n');
  process.exit(2);
}

const { native } = c.lib();
/** {kill(): void} of every child still alive. */
const live = new Set();

function gc() {
  if (global.gc) {
    global.gc();
    global.gc();
  }
}

function reading() {
  gc();
  return { rssKB: c.rssKB(), heapUsed: process.memoryUsage().heapUsed, fds: c.fdCount(), threads: c.threadCount() };
}

async function run() {
  await c.sleep(50);
  // One spawn and reap first, so that one-time costs (loading the addon, child_process's
  // lazy setup, /dev/null lookups) are not counted per child.
  await new Promise((resolve, reject) => {
    if (mode === 'ours') {
      const ch = native.spawn({ file: target, argv: [target], fds: ['null', 'null', 'null'], onExit: () => resolve() });
      ch.signal('SIGKILL');
    } else {
      const ch = cp.spawn(target, [], { stdio: 'ignore' });
      ch.on('error', reject);
      ch.on('exit', () => resolve());
      ch.kill('SIGKILL');
    }
  });
  await c.sleep(20);
  const before = reading();

  let left = count;
  let allExited;
  const exited = new Promise((resolve) => (allExited = resolve));
  const onExit = (entry) => {
    live.delete(entry);
    if (--left === 0) allExited();
  };

  const took = new Float64Array(count);
  const t0 = c.nowUs();
  if (mode === 'ours') {
    for (let i = 0; i < count; i++) {
      const entry = {};
      const ts = c.nowUs();
      const ch = native.spawn({
        file: target,
        argv: [target],
        fds: ['null', 'null', 'null'],
        onExit: () => onExit(entry),
      });
      took[i] = c.nowUs() - ts;
      entry.kill = () => ch.signal('SIGKILL');
      live.add(entry);
    }
  } else {
    for (let i = 0; i < count; i++) {
      const entry = {};
      const ts = c.nowUs();
      const ch = cp.spawn(target, [], { stdio: 'ignore' });
      took[i] = c.nowUs() - ts;
      ch.on('exit', () => onExit(entry));
      entry.kill = () => ch.kill('SIGKILL');
      live.add(entry);
    }
  }
  const t1 = c.nowUs();
  const edge = Math.min(100, count);
  const after = reading();

  const t2 = c.nowUs();
  for (const entry of live) entry.kill();
  await exited;
  const t3 = c.nowUs();
  await c.sleep(20);
  const end = reading();

  return {
    count,
    startMs: (t1 - t0) / 1e3,
    reapMs: (t3 - t2) / 1e3,
    rssBeforeKB: before.rssKB,
    rssAfterKB: after.rssKB,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    fdsBefore: before.fds,
    fdsAfter: after.fds,
    fdsEnd: end.fds,
    threadsBefore: before.threads,
    threadsAfter: after.threads,
    threadsEnd: end.threads,
    first100Us: c.summary(took.subarray(0, edge)).median,
    last100Us: c.summary(took.subarray(count - edge)).median,
  };
}

c.serve(
  (msg) => {
    if (msg.cmd === 'run') return run();
    throw new Error(`unknown request ${JSON.stringify(msg)}`);
  },
  () => {
    for (const entry of live) {
      try {
        entry.kill();
      } catch {
        // it has exited already
      }
    }
  },
);
process.send({ event: 'ready' });

'use strict';
/**
 * Workers terminated at random points of their work, run in a process of its own so that an
 * abort (the defect this guards against) ends this process, not the test runner:
 *
 *   node terminate-workers.js spawn <json>      workers spawning probes in a loop
 *   node terminate-workers.js virtiofsd <json>  workers starting real virtiofsd daemons
 *
 * json: { rounds, workers, maxDelayMs, dir, virtiofsd? }. Prints one JSON line: per round the
 * fd count before and after, the children left, and (virtiofsd) whether each socket path could
 * be started again from the main thread afterwards.
 */
const fs = require('node:fs');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const [mode, json] = process.argv.slice(2);
if (isMainThread && mode === undefined) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const root = path.resolve(__dirname, '..', '..');
const probe = path.join(root, 'build', 'helpers', 'probe');

/** The worker: work until terminated. */
async function work() {
  const { mode: m, socketPath, sourcePath, virtiofsd } = workerData;
  if (m === 'spawn') {
    const net = require('node:net');
    const { spawn } = require(path.join(root, 'dist', 'process', 'native.js'));
    parentPort.postMessage('online');
    for (;;) {
      await new Promise((resolve) => {
        let pipes = [];
        const onExit = () => {
          for (const p of pipes) p.destroy();
          resolve();
        };
        const fds = ['null', 'pipe', 'pipe'];
        const child = spawn({ file: probe, argv: [probe], fds, newProcessGroup: true, onExit });
        // As src/daemon-process.ts does: the pipes become streams at once, which the worker's
        // teardown closes like any other handle.
        pipes = [1, 2].map((i) => new net.Socket({ fd: child.pipes[i], readable: true, writable: false }).resume());
      });
    }
  }
  const pino = require('pino');
  const { Virtiofsd } = require(path.join(root, 'dist', 'index.js'));
  parentPort.postMessage('online');
  for (;;) {
    const d = new Virtiofsd({ socketPath, sourcePath, path: virtiofsd, logger: pino({ level: 'silent' }) });
    await d.start();
    await d.stop();
  }
}

if (!isMainThread) {
  work().catch((err) => parentPort.postMessage(`error: ${err.stack}`));
  return;
}

const { childrenOf, fdTable, sleep } = require('./util.js');

/** Our open fds, as "fd -> target" lines, without the listing's own fd (its number may differ). */
const fds = () => fdTable().filter((line) => !line.endsWith(' -> ?'));

/** Our children still around (any state), as "pid state" lines. */
const children = () => childrenOf().map((st) => `${st.pid} ${st.state}`);

/** Start a worker, let it work for a random moment, terminate it. */
async function oneWorker(args, i) {
  const data = {
    mode,
    socketPath: path.join(args.dir, `w${i}.sock`),
    sourcePath: args.dir,
    virtiofsd: args.virtiofsd,
  };
  const w = new Worker(__filename, { workerData: data });
  const errors = [];
  w.on('message', (m) => m !== 'online' && errors.push(m));
  w.on('error', (e) => errors.push(String(e)));
  await new Promise((resolve) => w.once('online', resolve));
  await sleep(Math.random() * args.maxDelayMs);
  await w.terminate();
  return errors;
}

/** Whether a daemon can be started (and stopped) on each worker's path from here. */
async function pathsReusable(args) {
  const pino = require('pino');
  const { Virtiofsd } = require(path.join(root, 'dist', 'index.js'));
  const failures = [];
  for (let i = 0; i < args.workers; i++) {
    const socketPath = path.join(args.dir, `w${i}.sock`);
    const logger = pino({ level: 'silent' });
    const d = new Virtiofsd({ socketPath, sourcePath: args.dir, path: args.virtiofsd, logger });
    try {
      await d.start();
      await d.stop();
    } catch (err) {
      failures.push(`${socketPath}: ${err.code} ${err.message}`);
    }
  }
  return failures;
}

async function main() {
  const args = JSON.parse(json);
  const rounds = [];
  if (mode === 'virtiofsd')
    require(path.join(root, 'dist', 'index.js')); // load the addon before the baseline
  else require(path.join(root, 'dist', 'process', 'native.js')).closeFd(fs.openSync('/dev/null', 'r'));
  // One round first, uncounted: Node opens a few fds of its own for its first worker.
  for (let r = -1; r < args.rounds; r++) {
    const before = fds();
    const errors = (await Promise.all(Array.from({ length: args.workers }, (_, i) => oneWorker(args, i)))).flat();
    await sleep(50); // let handles closed by the teardown be released
    if (r < 0) continue;
    const after = fds();
    const round = { leaked: after.filter((f) => !before.includes(f)), children: children(), errors };
    if (mode === 'virtiofsd') round.notReusable = await pathsReusable(args);
    rounds.push(round);
  }
  process.stdout.write(`${JSON.stringify({ rounds })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});

'use strict';
/**
 * A manager of daemons for the lifetime tests: `node lifetime-manager.js <json>`, or loaded as
 * a worker_thread with the same object as workerData. It starts every daemon of `daemons`
 * through the library, then writes {handles} (each daemon's handle()) as JSON to `result`
 * (worker: posts it) and waits to be killed - or, with `then: 'exit'`, calls process.exit(0).
 *
 * daemons[i]: { kind: 'virtiofsd' | 'nydusd', path, dir (shared dir; sockets go there too),
 *               lifetime, debug }. Daemon output goes to `log` (a file) as pino JSON, if given.
 */
const fs = require('node:fs');
const path = require('node:path');
const { isMainThread, parentPort, workerData } = require('node:worker_threads');

const args = isMainThread ? (process.argv[2] ? JSON.parse(process.argv[2]) : null) : workerData;
if (!args) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const pino = require('pino');
const { Nydusd, Virtiofsd } = require('../../dist/index.js');

const logger = args.log
  ? pino({ level: 'debug', base: null }, pino.destination({ dest: args.log, sync: true }))
  : pino({ level: 'silent' });

function make(d) {
  if (d.kind === 'nydusd') {
    return new Nydusd({
      path: d.path,
      sockPath: path.join(d.dir, 'vhost.sock'),
      apiSockPath: path.join(d.dir, 'api.sock'),
      sourcePath: d.dir,
      lifetime: d.lifetime,
      debug: d.debug,
      cgroup: d.cgroup,
      cgroupCreate: d.cgroupCreate,
      logger,
    });
  }
  return new Virtiofsd({
    path: d.path,
    socketPath: path.join(d.dir, 'vhost.sock'),
    sourcePath: d.dir,
    lifetime: d.lifetime,
    debug: d.debug,
    cgroup: d.cgroup,
    cgroupCreate: d.cgroupCreate,
    logger,
  });
}

/** Written whole or not at all: the test polls for the file. */
function writeResult(value) {
  fs.writeFileSync(`${args.result}.tmp`, JSON.stringify(value));
  fs.renameSync(`${args.result}.tmp`, args.result);
}

(async () => {
  const handles = [];
  for (const d of args.daemons) {
    const daemon = make(d);
    await daemon.start();
    handles.push(daemon.handle());
  }
  if (isMainThread) writeResult({ handles });
  else parentPort.postMessage({ handles });
  if (args.then === 'exit') process.exit(0);
  setInterval(() => {}, 60000);
})().catch((err) => {
  const error = String(err && err.stack);
  if (isMainThread) writeResult({ error });
  else parentPort.postMessage({ error });
});

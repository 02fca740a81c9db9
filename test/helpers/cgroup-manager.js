'use strict';
/**
 * A manager process for the cgroup trust tests: started with child_process.fork (an IPC
 * channel), it runs one daemon at a time through the library on request and answers each
 * message with one reply. Several of them race each other the way two managers on one host do.
 *
 *   { op: 'start', kind: 'virtiofsd' | 'nydusd', path, dialect?, dir, cgroup, cgroupCreate }
 *       → { ok: true, pid, cgroup (the handle's cgroup record), socketPath }
 *       | { ok: false, error: { name, code, option, message }, children (our live children) }
 *   { op: 'stop' } → { ok: true, warnings (the library's warn/error records meanwhile) }
 *   { op: 'join', dir } → this process moves itself into cgroup dir (writes 0 to cgroup.procs)
 *   { op: 'sleeper', into? } → spawns build/helpers/sleeper in a process group of its own
 *       (so outside any daemon's group), moved into cgroup `into` when given → { ok, pid }
 *   { op: 'children' } → { ok, children }
 *
 * `node --test test/` loads every .js under test/, helpers included: without an IPC channel
 * this does nothing.
 */
const fs = require('node:fs');
const path = require('node:path');

if (!process.send) return;

// A shim in LD_PRELOAD (hide-cgroup-kill.so) is for this process only, not for the daemons.
delete process.env.LD_PRELOAD;

const pino = require('pino');
const { Nydusd, Virtiofsd } = require('../../dist/index.js');
const native = require('../../dist/process/native.js');
const util = require('./util.js');

const SLEEPER = path.join(__dirname, '..', '..', 'build', 'helpers', 'sleeper');

/** The library's warn/error records since the last stop, as pino wrote them. */
const warnings = [];
const logger = pino({ level: 'warn', base: null }, { write: (line) => warnings.push(JSON.parse(line)) });

let daemon = null;
const sleepers = [];

function make(m) {
  const common = { path: m.path, sourcePath: m.dir, cgroup: m.cgroup, cgroupCreate: m.cgroupCreate, logger };
  if (m.kind === 'nydusd') {
    return new Nydusd({
      ...common,
      sockPath: path.join(m.dir, 'vhost.sock'),
      apiSockPath: path.join(m.dir, 'api.sock'),
      stopTimeoutMs: 1000,
    });
  }
  return new Virtiofsd({ ...common, dialect: m.dialect, socketPath: path.join(m.dir, 'vhost.sock') });
}

const handlers = {
  async start(m) {
    const d = make(m);
    try {
      const pid = await d.start();
      daemon = d;
      return { ok: true, pid, cgroup: d.handle().cgroup, socketPath: path.join(m.dir, 'vhost.sock') };
    } catch (err) {
      const { name, code, option, message } = err;
      return { ok: false, error: { name, code, option, message }, children: util.liveChildren().map((c) => c.pid) };
    }
  },
  async stop() {
    warnings.length = 0;
    const d = daemon;
    daemon = null;
    if (d) await d.stop();
    return { ok: true, warnings: [...warnings] };
  },
  join(m) {
    fs.writeFileSync(path.join(m.dir, 'cgroup.procs'), '0');
    return { ok: true };
  },
  sleeper(m) {
    const child = native.spawn({
      file: SLEEPER,
      argv: [SLEEPER],
      fds: ['null', 'null', 'null'],
      newProcessGroup: true,
      onExit: () => {},
    });
    sleepers.push(child);
    if (m.into) fs.writeFileSync(path.join(m.into, 'cgroup.procs'), String(child.pid));
    return { ok: true, pid: child.pid };
  },
  children() {
    return { ok: true, children: util.liveChildren().map((c) => c.pid) };
  },
};

process.on('message', (m) => {
  Promise.resolve()
    .then(() => handlers[m.op](m))
    .catch((err) => ({ ok: false, error: { name: err.name, code: err.code, message: String(err.stack) } }))
    .then((reply) => process.send({ id: m.id, ...reply }));
});
process.on('disconnect', async () => {
  for (const s of sleepers) s.signal('SIGKILL');
  if (daemon) await daemon.stop();
  process.exit(0);
});

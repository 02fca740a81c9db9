'use strict';
/**
 * Table 3 worker: `node --expose-gc bench/virtiofsd-worker.js --rss MB --source DIR`, forked by
 * index.js with an IPC channel. Grows its RSS to about MB MiB, then on request:
 *
 *   {id, cmd: 'iter', mode: 'ours' | 'baseline', dialect, binary}
 *     → {readyMs, handshakeMs, features}: from the start call until the daemon is ready (its
 *       stderr said "Waiting for vhost-user socket connection"), and until a vhost-user
 *       front-end connected to the socket got its GET_FEATURES answered. The daemon is then
 *       disconnected, killed (its whole process group) and its socket removed, untimed.
 *
 * ours:     new Virtiofsd({...}).start() (dist/virtiofsd/virtiofsd.js).
 * baseline: what it takes with nothing but Node's own API (see makeBaseline below).
 *
 * Every daemon's process group is announced to index.js ({event: 'daemon', pgid}) and
 * retracted once it is gone ({event: 'daemonGone', pgid}), so that a worker that dies cannot
 * leave one behind.
 */
const cp = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const pino = require(require.resolve('pino', { paths: [require('./common.js').root] }));
const c = require('./common.js');
const { connectVhostUser } = require(path.join(c.root, 'test', 'helpers', 'vhost-user.js'));

const args = c.parseArgs();
const rssMB = Number(args.rss);
const sourcePath = args.source;
if (!Number.isFinite(rssMB) || !sourcePath) {
  process.stderr.write('usage: node --expose-gc bench/virtiofsd-worker.js --rss MB --source DIR\n');
  process.exit(2);
}

const { virtiofsd } = c.lib();
const { Virtiofsd, buildVirtiofsdArgs, READY_MARKER } = virtiofsd;
const keep = c.ballast(rssMB);
const shim = path.join(c.binDir, 'clear-nonblock');
const sockDir = c.runDir || os.tmpdir();
// The library logs every daemon line and its own records; at info level, into /dev/null.
const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));

let seq = 0;
/** Cleanup of the daemon of the iteration in flight, if any. */
let current = null;

function announce(pgid) {
  process.send({ event: 'daemon', pgid });
}
function retract(pgid) {
  process.send({ event: 'daemonGone', pgid });
}

/**
 * True while a live (non-zombie) process is in group pgid. Zombies do not count: the daemons'
 * sandbox children become zombies of init once the daemon is gone, and init reaps when it will.
 */
function groupAlive(pgid) {
  for (const name of fs.readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp ...
    if (Number(rest[2]) === pgid && rest[0] !== 'Z') return true;
  }
  return false;
}

/** Poll until no live process of group pgid is left (bounded). */
async function groupGone(pgid, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(pgid) && Date.now() < deadline) await c.sleep(2);
}

async function handshake(socketPath) {
  const conn = await connectVhostUser(socketPath, { timeoutMs: 5000 });
  try {
    return await conn.getFeatures();
  } finally {
    conn.close();
  }
}

async function iterOurs(binary, dialect, socketPath) {
  const v = new Virtiofsd({ path: binary, socketPath, sourcePath, dialect, logger, startTimeoutMs: 10000 });
  let pgid = 0;
  current = async () => {
    await v.stop();
  };
  try {
    const t0 = c.nowUs();
    pgid = await v.start();
    const t1 = c.nowUs();
    announce(pgid);
    const features = await handshake(socketPath);
    const t2 = c.nowUs();
    return { readyMs: (t1 - t0) / 1e3, handshakeMs: (t2 - t0) / 1e3, features: `0x${features.toString(16)}` };
  } finally {
    await v.stop(); // SIGKILL to the group, waits until it is empty, removes the socket
    if (pgid) retract(pgid);
    current = null;
  }
}

/**
 * The baseline, "made to work" with Node's own API:
 * 1. net.createServer().listen(tmpPath): bind and listen happen synchronously (primary
 *    process); server._handle.fd is the listening fd. It is O_NONBLOCK, and Node has no fcntl.
 * 2. child_process.spawn(clear-nonblock, [daemon, ...args], {stdio: ['ignore', 'ignore',
 *    'pipe', fd], detached: true}): the fd lands at 3; the shim clears O_NONBLOCK on it (a flag
 *    of the shared open file description) and execs the daemon. detached: its own process
 *    group (setsid), so that it and its sandbox child can be killed together.
 * 3. fs.linkSync(tmpPath, socketPath), then server.close(), in the same tick as the listen:
 *    Node accepts connections only from its event loop, which has not run yet, so it never
 *    takes one meant for the daemon; close() unlinks tmpPath and closes Node's copy of the fd,
 *    while socketPath (a second name of the same socket) stays for the VMM. Without the link,
 *    close() would unlink the only name; without the close, Node would accept (and hold) the
 *    VMM's connection itself, or block in accept() on the now-blocking fd.
 * 4. Ready: the marker line on the child's stderr pipe.
 */
function makeBaseline(binary, args, socketPath) {
  const tmpPath = `${socketPath}.node`;
  const server = net.createServer();
  server.on('error', () => {});
  server.listen(tmpPath);
  const fd = server._handle && server._handle.fd;
  if (!(fd >= 0)) throw new Error(`net.Server did not listen synchronously on ${tmpPath}`);
  let child;
  try {
    child = cp.spawn(shim, [binary, ...args], { stdio: ['ignore', 'ignore', 'pipe', fd], detached: true });
    fs.linkSync(tmpPath, socketPath);
  } finally {
    server.close();
  }
  return child;
}

async function iterBaseline(binary, dialect, socketPath) {
  const daemonArgs = buildVirtiofsdArgs({
    dialect,
    sourcePath,
    cache: 'auto',
    syslog: false,
    debug: false,
    extraArgs: [],
  });
  let child;
  let exited;
  const kill = async () => {
    if (!child || !child.pid) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    await exited;
    await groupGone(child.pid);
  };
  current = kill;
  try {
    const t0 = c.nowUs();
    child = makeBaseline(binary, daemonArgs, socketPath);
    exited = new Promise((resolve) => child.on('exit', resolve));
    child.on('error', () => {});
    if (child.pid) announce(child.pid);
    const tail = [];
    await new Promise((resolve, reject) => {
      let buf = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (s) => {
        buf += s;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          tail.push(line);
          if (line.includes(READY_MARKER)) resolve();
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) =>
        reject(
          new Error(
            `baseline daemon exited (code ${code}, signal ${signal}) before ready:\n${tail.slice(-10).join('\n')}`,
          ),
        ),
      );
      setTimeout(() => reject(new Error('baseline daemon not ready within 10 s')), 10000).unref();
    });
    const t1 = c.nowUs();
    const features = await handshake(socketPath);
    const t2 = c.nowUs();
    return { readyMs: (t1 - t0) / 1e3, handshakeMs: (t2 - t0) / 1e3, features: `0x${features.toString(16)}` };
  } finally {
    await kill();
    if (child && child.pid) retract(child.pid);
    if (child && child.stderr) child.stderr.destroy();
    fs.rmSync(socketPath, { force: true });
    fs.rmSync(`${socketPath}.node`, { force: true });
    current = null;
  }
}

async function iter({ mode, dialect, binary }) {
  if (global.gc) global.gc();
  const socketPath = path.join(sockDir, `v${process.pid}-${++seq}.sock`);
  if (mode === 'ours') return iterOurs(binary, dialect, socketPath);
  if (mode === 'baseline') return iterBaseline(binary, dialect, socketPath);
  throw new Error(`unknown mode ${mode}`);
}

c.serve(
  (msg) => {
    if (msg.cmd === 'iter') return iter(msg);
    throw new Error(`unknown request ${JSON.stringify(msg)}`);
  },
  async () => {
    if (current) await current();
    keep.length = 0;
  },
);
process.send({ event: 'ready', rssKB: c.rssKB() });

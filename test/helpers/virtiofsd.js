'use strict';
/**
 * What the virtiofsd test files (test/virtiofsd-*.test.js) share: the per-dialect facts of the
 * real daemons, cleanup that survives a failed test (track), the vhost-user handshake that proves
 * a daemon serves, an onQuit that records what the system looked like when it ran, and a
 * per-dialect setup for the tests against the real daemons.
 *
 * The general helpers (tempDir, sleep, /proc, loggers, rejection) are util.js's; the daemons and
 * their process groups are daemons.js's.
 */
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Virtiofsd } = require('../../dist/index.js');
const { connectVhostUser, VIRTIO_F_VERSION_1, VHOST_USER_F_PROTOCOL_FEATURES } = require('./vhost-user.js');
const h = require('./daemons.js');
const { captureLogger, tempDir } = require('./util.js');

/** The line the legacy virtiofsd prints when it is ready; stand-ins print it to look ready. */
const LEGACY_READY_LINE = 'virtio_session_mount: Waiting for vhost-user socket connection...';

/** Per-dialect facts, verified against legacy 7.2.22 and Rust 1.13.2. */
const FACTS = {
  legacy: {
    features: 0x175000000n,
    bogusExit: 1,
    bogusMessage: "fuse: unknown option(s): `--bogus-flag'",
    sigtermWaiting: 1,
    sigtermServing: 0,
    cacheModes: ['auto', 'always', 'never'],
  },
  rust: {
    features: 0x174000000n,
    bogusExit: 2,
    bogusMessage: "error: unexpected argument '--bogus-flag' found",
    sigtermWaiting: 1,
    sigtermServing: 1,
    cacheModes: ['auto', 'always', 'never', 'metadata'],
  },
};

/**
 * Track a daemon for cleanup after t, whatever happened: stop() it and SIGKILL whatever is left
 * of the groups it started (pgids are recorded by start()). Returns the Set of those pgids.
 */
function track(t, daemon) {
  const pgids = new Set();
  const origStart = daemon.start.bind(daemon);
  daemon.start = async (onQuit) => {
    const pid = await origStart(onQuit);
    pgids.add(pid);
    return pid;
  };
  t.after(async () => {
    let timer;
    await Promise.race([daemon.stop().catch(() => {}), new Promise((r) => (timer = setTimeout(r, 15000)))]);
    clearTimeout(timer);
    for (const st of h.liveMembersOfGroups(pgids)) {
      try {
        process.kill(st.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });
  return pgids;
}

/** Connect as a vhost-user front-end, check GET_FEATURES; returns { client, features }. */
async function handshake(socketPath) {
  const client = await connectVhostUser(socketPath, { timeoutMs: 5000 });
  try {
    const features = await client.getFeatures();
    assert.ok(features & VIRTIO_F_VERSION_1, `VIRTIO_F_VERSION_1 (bit 32) not in 0x${features.toString(16)}`);
    assert.ok(
      features & VHOST_USER_F_PROTOCOL_FEATURES,
      `VHOST_USER_F_PROTOCOL_FEATURES (bit 30) not in 0x${features.toString(16)}`,
    );
    return { client, features };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** Records onQuit calls with what /proc and the file system looked like at that moment. */
function quitRecorder(socketPath) {
  const quits = [];
  let pgid = 0;
  const onQuit = (exit) => {
    quits.push({
      exit: { ...exit },
      socketExisted: fs.existsSync(socketPath),
      groupAtQuit: pgid ? h.liveGroupMembers(pgid) : null,
    });
  };
  return { quits, onQuit, setPgid: (p) => (pgid = p) };
}

/** The daemon's "virtiofsd started" record. */
function startedRecord(records) {
  const r = records.find((x) => x.msg === 'virtiofsd started');
  assert.ok(r, `no "virtiofsd started" record among ${JSON.stringify(records.map((x) => x.msg))}`);
  return r;
}

/**
 * A temp dir with a source dir and a socket path, and a tracked Virtiofsd of the real `dialect`
 * on them with `extra` options. start() records the exits in `quits` (see quitRecorder).
 */
function realSetup(t, dialect, extra = {}) {
  const dir = tempDir(t, 'vfsd-');
  const sourcePath = path.join(dir, 'src');
  fs.mkdirSync(sourcePath);
  const socketPath = path.join(dir, 'v.sock');
  const { logger, records } = captureLogger();
  const opts = { path: h.virtiofsdPath(dialect), socketPath, sourcePath, logger, ...extra };
  const d = new Virtiofsd(opts);
  const pgids = track(t, d);
  const rec = quitRecorder(opts.socketPath);
  const start = async () => {
    const pid = await d.start(rec.onQuit);
    rec.setPgid(pid);
    return pid;
  };
  return { dir, sourcePath, socketPath: opts.socketPath, d, records, start, pgids, quits: rec.quits, logger };
}

const timings = [];
/** Time a test body; the numbers are reported as a diagnostic and kept for printTimings(). */
function timed(name, fn) {
  return async (t) => {
    const t0 = process.hrtime.bigint();
    try {
      return await fn(t);
    } finally {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      timings.push([name, ms]);
      t.diagnostic(`${name}: ${ms.toFixed(0)} ms`);
    }
  };
}

/** Print the timings of this file's timed() tests, one "# timing" line each. */
function printTimings() {
  for (const [name, ms] of timings) console.log(`# timing ${name}: ${ms.toFixed(0)} ms`);
}

module.exports = {
  FACTS,
  LEGACY_READY_LINE,
  handshake,
  printTimings,
  quitRecorder,
  realSetup,
  startedRecord,
  timed,
  track,
};

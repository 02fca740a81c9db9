'use strict';
/**
 * What the nydusd test files (test/nydusd-*.test.js) share. They run against a nydusd process:
 * by default the stand-in test/helpers/nydusd-standin.js, or a real nydusd when NYDUSD=/path is
 * set.
 *
 * Against a real nydusd:
 * - the stand-in's record file (NYDUSD_STANDIN_RECORD) does not exist; the same facts are
 *   checked server-side through GET /api/v1/daemon's backend_collection, which is checked in
 *   both modes;
 * - the RAFS mounts need a real image: NYDUS_BOOTSTRAP=<bootstrap file> and
 *   NYDUS_RAFS_CONFIG=<config JSON text or file>; without them those tests FAIL and say so;
 * - tests that need a stand-in knob (NYDUSD_STANDIN_*) FAIL with the reason ("[stand-in only]");
 * - a real nydusd with no VMM connected never exits on SIGTERM, so stop() ends in SIGKILL after
 *   stopTimeoutMs: the tests use a short stopTimeoutMs then, and accept that exit.
 *
 * Here: test() with a default timeout, standinTest(), a test's world() (dirs, sockets, a
 * wrapper binary that counts its runs, tracked Nydusd instances), a RAFS image, what the API
 * and /proc say, and the checks that nothing is left.
 */
const nodeTest = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Nydusd, NydusClient } = require('../../dist/index.js');
const native = require('../../dist/process/native.js');
const h = require('./daemons.js');
const { captureLogger, exists, isSocket, script, sleep } = require('./util.js');

const STANDIN = path.join(__dirname, 'nydusd-standin.js');
const REAL = process.env.NYDUSD || '';
/** The nydusd the tests run: $NYDUSD, or the stand-in. */
const DAEMON = REAL || STANDIN;
/** A real nydusd without a VMM ignores SIGTERM: keep stops short against it. */
const STOP_TIMEOUT_MS = REAL ? 1000 : 5000;

/** node:test's test() with a default timeout, so that a hang fails instead of stalling the run. */
function test(name, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  return nodeTest.test(name, { timeout: 60000, ...opts }, fn);
}

/** A test that needs the stand-in: against a real nydusd it FAILS and says why. */
function standinTest(name, why, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  test(`${name} [stand-in only]`, opts, async (t) => {
    if (REAL) assert.fail(`stand-in only, cannot run against NYDUSD=${REAL}: ${why}`);
    await fn(t);
  });
}

/** /proc/<pid>/cmdline as an array, or null. */
function cmdline(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').slice(0, -1);
  } catch {
    return null;
  }
}

/** SIGKILL every process whose command line mentions `needle` (our temp dir): cleanup after failures. */
function killMentioning(needle) {
  const killed = [];
  for (const st of h.allProcesses()) {
    if (st.pid === process.pid || st.state === 'Z' || st.state === 'X') continue;
    const argv = cmdline(st.pid);
    if (argv && argv.some((a) => a.includes(needle))) {
      try {
        process.kill(st.pid, 'SIGKILL');
        killed.push(st.pid);
      } catch {
        // gone meanwhile
      }
    }
  }
  return killed;
}

/** Processes (alive) whose command line mentions needle. */
function processesMentioning(needle) {
  return h.allProcesses().filter((st) => {
    if (st.pid === process.pid || st.state === 'Z' || st.state === 'X') return false;
    const argv = cmdline(st.pid);
    return argv !== null && argv.some((a) => a.includes(needle));
  });
}

/** The stand-in's record file (one JSON request per line) as an array; [] before it exists. */
function readRecord(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** GET /api/v1/daemon's backend_collection. */
async function collection(apiSockPath) {
  const c = new NydusClient(apiSockPath, { timeoutMs: 3000 });
  try {
    return (await c.daemonInfo()).backend_collection;
  } finally {
    c.close();
  }
}

/** A stale unix socket file at p: bound by us, then closed without unlink. */
function staleSocket(p) {
  const s = native.listenUnix(p);
  native.closeFd(s.fd);
  assert.ok(isSocket(p), `${p} should be a socket file`);
  return fs.lstatSync(p).ino;
}

/** Connect to p; resolves 'connected' or the error code. */
function tryConnect(p) {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e) => resolve(e.code));
  });
}

/** A RAFS image: a real one from the environment with NYDUSD, a minimal fake one with the stand-in. */
function rafsImage(dir) {
  if (REAL) {
    const bootstrap = process.env.NYDUS_BOOTSTRAP;
    let config = process.env.NYDUS_RAFS_CONFIG;
    if (!bootstrap || !config) {
      assert.fail(
        'a real nydusd needs a real RAFS image: set NYDUS_BOOTSTRAP=<bootstrap file> and NYDUS_RAFS_CONFIG=<config JSON or file>',
      );
    }
    if (!config.trimStart().startsWith('{')) config = fs.readFileSync(config, 'utf8');
    return { bootstrap, config };
  }
  // The stand-in (RafsSuper::load_from_file, approximated) checks that the bootstrap opens, is
  // not a directory and carries the RAFS v5 superblock magic 0x52414653 (little-endian at offset
  // 0) or the v6 EROFS magic at 1024; the config only for its v2/v1 JSON shape.
  const bootstrap = path.join(dir, 'image.boot');
  const sb = Buffer.alloc(8192);
  sb.writeUInt32LE(0x52414653, 0); // RAFS_SUPER_MAGIC
  sb.writeUInt32LE(0x500, 4); // RAFS_SUPER_VERSION_V5
  sb.writeUInt32LE(8192, 8); // sb_size
  fs.writeFileSync(bootstrap, sb);
  fs.mkdirSync(path.join(dir, 'blobs'), { recursive: true });
  const config = JSON.stringify({
    version: 2,
    id: 'test',
    backend: { type: 'localfs', localfs: { dir: path.join(dir, 'blobs') } },
    cache: { type: 'filecache', filecache: { work_dir: path.join(dir, 'blobs') } },
  });
  return { bootstrap, config };
}

/** Our environment for the daemon, without knobs we may have inherited, plus `extra`. */
function daemonEnv(record, extra = {}) {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  for (const k of Object.keys(env)) if (k.startsWith('NYDUSD_STANDIN_')) delete env[k];
  if (!REAL && record) env.NYDUSD_STANDIN_RECORD = record;
  return { ...env, ...extra };
}

/**
 * A test's world: a short temp dir with a shared directory, socket paths, the record file, a
 * wrapper "nydusd" that leaves a marker each time it is run, and a factory for tracked Nydusd
 * instances. After the test, whatever happened: stop() every instance, SIGKILL any process that
 * still mentions the dir, remove the dir.
 */
function world(t, { env = {}, prefix = 'nyd-' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const w = {
    dir,
    share: path.join(dir, 'share'),
    sockPath: path.join(dir, 'v.sock'),
    apiSockPath: path.join(dir, 'a.sock'),
    record: path.join(dir, 'record.jsonl'),
    marker: path.join(dir, 'ran'),
    wrapper: path.join(dir, 'nydusd-wrapper'),
    daemons: [],
    quits: [],
  };
  fs.mkdirSync(w.share);
  // The version probe (`--version`, once per binary) is not a start: only starts are counted.
  script(w.wrapper, `[ "$1" = --version ] || echo "$$" >> '${w.marker}'\nexec '${DAEMON}' "$@"`);
  w.env = daemonEnv(w.record, env);
  const { logger, records } = captureLogger();
  w.logger = logger;
  w.records = records;
  /** An onQuit that records the exit and what the file system looked like then. */
  w.onQuit = (exit) => {
    w.quits.push({
      exit: { ...exit },
      sockExisted: exists(w.sockPath),
      apiSockExisted: exists(w.apiSockPath),
      at: Date.now(),
    });
  };
  w.make = (overrides = {}) => {
    const d = new Nydusd({
      path: DAEMON,
      sockPath: w.sockPath,
      apiSockPath: w.apiSockPath,
      sourcePath: w.share,
      logger: w.logger,
      env: w.env,
      stopTimeoutMs: STOP_TIMEOUT_MS,
      ...overrides,
    });
    w.daemons.push(d);
    return d;
  };
  w.ran = () => (fs.existsSync(w.marker) ? fs.readFileSync(w.marker, 'utf8').split('\n').filter(Boolean).length : 0);
  w.requests = () => readRecord(w.record);
  t.after(async () => {
    for (const d of w.daemons) await Promise.race([d.stop().catch(() => {}), sleep(15000)]);
    killMentioning(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

/** Nothing of pid's group alive, no zombie child of ours, no process mentioning dir. */
async function assertNothingLeft(pgid, dir) {
  if (pgid) assert.deepEqual(h.liveGroupMembers(pgid), [], `live members of group ${pgid}`);
  // The reaping happens on our event loop: give it a moment before calling a zombie a leak.
  const zombies = await h
    .waitFor(() => h.zombieChildren().length === 0, { timeoutMs: 2000 })
    .then(
      () => [],
      () => h.zombieChildren(),
    );
  assert.deepEqual(zombies, [], 'zombie children of ours');
  if (dir) assert.deepEqual(processesMentioning(dir), [], `processes mentioning ${dir}`);
}

/** Neither of the world's socket paths has anything at it. */
function assertSocketsGone(w) {
  assert.equal(exists(w.sockPath), false, `sockPath ${w.sockPath} should be gone`);
  assert.equal(exists(w.apiSockPath), false, `apiSockPath ${w.apiSockPath} should be gone`);
}

module.exports = {
  DAEMON,
  REAL,
  STOP_TIMEOUT_MS,
  assertNothingLeft,
  assertSocketsGone,
  cmdline,
  collection,
  daemonEnv,
  killMentioning,
  processesMentioning,
  rafsImage,
  readRecord,
  staleSocket,
  standinTest,
  test,
  tryConnect,
  world,
};

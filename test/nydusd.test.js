'use strict';
/**
 * Nydusd (src/nydusd.ts) behind the VirtiofsDaemon contract, against a nydusd process: by
 * default the stand-in test/helpers/nydusd-standin.js, or a real nydusd when NYDUSD=/path is set.
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
 * Build first: npx tsc -p tsconfig.json
 * Run: node --test --test-concurrency=1 test/nydusd.test.js
 */
const nodeTest = require('node:test');

const { describe } = nodeTest;
/** node:test's test() with a default timeout, so that a hang fails instead of stalling the run. */
function test(name, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  return nodeTest.test(name, { timeout: 60000, ...opts }, fn);
}
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const pino = require('pino');

const lib = require('../dist/index.js');
const native = require('../dist/native.js');
const {
  Nydusd,
  NydusClient,
  buildNydusdArgs,
  SHARED_MOUNTPOINT,
  DaemonRunningError,
  DaemonStartError,
  InvalidOptionError,
  NydusApiError,
  VirtiofsDaemonError,
} = lib;
const h = require('./helpers/daemons.js');
const { script } = require('./helpers/util.js');

const STANDIN = path.join(__dirname, 'helpers', 'nydusd-standin.js');
const REAL = process.env.NYDUSD || '';
const DAEMON = REAL || STANDIN;
/** A real nydusd without a VMM ignores SIGTERM: keep stops short against it. */
const STOP_TIMEOUT_MS = REAL ? 1000 : 5000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers

/** A test that needs the stand-in: against a real nydusd it FAILS and says why. */
function standinTest(name, why, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  test(`${name} [stand-in only]`, opts, async (t) => {
    if (REAL) assert.fail(`stand-in only, cannot run against NYDUSD=${REAL}: ${why}`);
    await fn(t);
  });
}

/** A pino logger whose records (parsed) land in `records`. */
function captureLogger() {
  const records = [];
  const logger = pino({ level: 'debug', base: null }, { write: (s) => records.push(JSON.parse(s)) });
  return { logger, records };
}

/** A pino logger that only counts (for the stress test). */
function countingLogger() {
  const counter = { n: 0 };
  const logger = pino({ level: 'debug', base: null }, { write: () => counter.n++ });
  return { logger, counter };
}

function isSocket(p) {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

function exists(p) {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
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

/** Assert that promise rejects; return the error for more checks. */
async function rejection(promise, what) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    return err;
  }
  assert.fail(`${what}: expected a rejection, got ${JSON.stringify(value)}`);
}

function readRecord(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
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
      assert.fail('a real nydusd needs a real RAFS image: set NYDUS_BOOTSTRAP=<bootstrap file> and NYDUS_RAFS_CONFIG=<config JSON or file>');
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
  const zombies = await h.waitFor(() => h.zombieChildren().length === 0, { timeoutMs: 2000 }).then(
    () => [],
    () => h.zombieChildren(),
  );
  assert.deepEqual(zombies, [], 'zombie children of ours');
  if (dir) assert.deepEqual(processesMentioning(dir), [], `processes mentioning ${dir}`);
}

function assertSocketsGone(w) {
  assert.equal(exists(w.sockPath), false, `sockPath ${w.sockPath} should be gone`);
  assert.equal(exists(w.apiSockPath), false, `apiSockPath ${w.apiSockPath} should be gone`);
}

function rssMiB() {
  return process.memoryUsage.rss() / MiB;
}
function settleRss() {
  gc();
  gc();
  return rssMiB();
}

// ---------------------------------------------------------------------------------------------
// The full cycle

test('start -> mount rafs -> umount -> stop: pid, requests, sockets, processes, onQuit', async (t) => {
  const w = world(t);
  const { bootstrap, config } = rafsImage(w.dir);
  const d = w.make();
  assert.equal(d.pid, 0, 'pid before start');

  const pid = await d.start(w.onQuit);
  assert.ok(Number.isInteger(pid) && pid > 0, `pid ${pid}`);
  assert.equal(d.pid, pid, 'd.pid while running');
  const st = h.procStat(pid);
  assert.ok(st && st.state !== 'Z', 'the daemon runs');
  assert.equal(st.ppid, process.pid, 'it is our child');
  assert.equal(st.pgrp, pid, 'in a process group of its own');
  assert.ok(isSocket(w.sockPath), 'vhost-user socket bound');
  assert.ok(isSocket(w.apiSockPath), 'API socket bound');
  assert.equal(await tryConnect(w.apiSockPath), 'connected');

  // passthrough_fs at /containers from sourcePath, before start resolved.
  assert.equal(SHARED_MOUNTPOINT, '/containers');
  let coll = await collection(w.apiSockPath);
  assert.equal(coll['/containers']?.backend_type, 'PassthroughFs', JSON.stringify(coll));

  const mp = '/rafs/0123456789abcdef/lowerdir';
  await d.mount({ source: bootstrap, mountpoint: mp, config });
  coll = await collection(w.apiSockPath);
  assert.equal(coll[mp]?.backend_type, 'Rafs', JSON.stringify(coll));
  await d.umount(mp);
  coll = await collection(w.apiSockPath);
  assert.equal(coll[mp], undefined, 'rafs gone from backend_collection');
  assert.ok(coll['/containers'], 'the share is still mounted');

  if (!REAL) {
    const reqs = w.requests();
    assert.equal(reqs.length, 3, JSON.stringify(reqs, null, 1));
    const [share, rafs, del] = reqs;
    assert.equal(share.method, 'POST');
    assert.equal(share.mountpoint, '/containers');
    assert.deepEqual(JSON.parse(share.body), { fs_type: 'passthrough_fs', source: w.share, config: '' });
    assert.equal(share.status, 204);
    assert.equal(rafs.method, 'POST');
    assert.equal(rafs.mountpoint, mp);
    assert.deepEqual(JSON.parse(rafs.body), { fs_type: 'rafs', source: bootstrap, config });
    assert.equal(rafs.status, 204);
    assert.equal(del.method, 'DELETE');
    assert.equal(del.mountpoint, mp);
    assert.equal(del.body, null, 'DELETE carries no body');
    assert.equal(del.status, 204);
  }

  const t0 = Date.now();
  await d.stop();
  const stopMs = Date.now() - t0;
  assert.equal(d.pid, 0, 'pid after stop');
  // onQuit has run by the time stop() resolves, once, with the sockets already removed.
  assert.equal(w.quits.length, 1, `onQuit calls: ${JSON.stringify(w.quits)}`);
  assert.equal(w.quits[0].exit.requested, true);
  assert.equal(w.quits[0].sockExisted, false, 'sockPath removed before onQuit');
  assert.equal(w.quits[0].apiSockExisted, false, 'apiSockPath removed before onQuit');
  if (!REAL) assert.deepEqual(w.quits[0].exit, { code: 0, signal: null, requested: true, known: true });
  assertSocketsGone(w);
  await assertNothingLeft(pid, w.dir);
  await sleep(100);
  assert.equal(w.quits.length, 1, 'onQuit exactly once');
  t.diagnostic(`stop took ${stopMs} ms`);
});

// ---------------------------------------------------------------------------------------------
// argv

describe('argv', () => {
  const base = { sockPath: '/run/kata/vhost.sock', apiSockPath: '/run/kata/api.sock' };

  test('buildNydusdArgs golden: info', () => {
    assert.deepEqual(buildNydusdArgs({ ...base, debug: false, extraArgs: [] }), [
      'virtiofs', '--log-level', 'info', '--apisock', '/run/kata/api.sock', '--sock', '/run/kata/vhost.sock',
    ]);
  });

  test('buildNydusdArgs golden: debug, extraArgs last and as they are, no --hybrid-mode', () => {
    const extra = ['--rlimit-nofile', '0', '--log-file=/tmp/x y'];
    const args = buildNydusdArgs({ ...base, debug: true, extraArgs: extra });
    assert.deepEqual(args, [
      'virtiofs', '--log-level', 'debug', '--apisock', '/run/kata/api.sock', '--sock', '/run/kata/vhost.sock', ...extra,
    ]);
    assert.ok(!args.includes('--hybrid-mode'));
    assert.deepEqual(extra, ['--rlimit-nofile', '0', '--log-file=/tmp/x y'], 'extraArgs not modified');
  });

  for (const debug of [false, true]) {
    test(`the running process sees exactly that argv (debug: ${debug}, extraArgs)`, async (t) => {
      const w = world(t);
      const extraArgs = ['--rlimit-nofile', '0'];
      const d = w.make({ debug, extraArgs });
      const pid = await d.start(w.onQuit);
      const want = buildNydusdArgs({ sockPath: w.sockPath, apiSockPath: w.apiSockPath, debug, extraArgs });
      assert.equal(want[2], debug ? 'debug' : 'info');
      const seen = cmdline(pid);
      assert.ok(seen, `/proc/${pid}/cmdline readable`);
      // A script's interpreter comes first (node <script> args...); the binary just precedes the args.
      assert.deepEqual(seen.slice(-want.length), want, `cmdline ${JSON.stringify(seen)}`);
      assert.equal(seen[seen.length - want.length - 1], DAEMON, `cmdline ${JSON.stringify(seen)}`);
      const started = w.records.find((r) => r.msg === 'nydusd started');
      assert.ok(started, 'a "nydusd started" record');
      assert.deepEqual(started.argv, [DAEMON, ...want]);
      assert.equal(started.subsystem, 'nydusd');
      await d.stop();
      await assertNothingLeft(pid, w.dir);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// mount / umount

describe('mount and umount', () => {
  test('mountpoint rule: anything but /rafs/<id>/lowerdir is refused before any request', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    await d.start(w.onQuit);
    const before = await collection(w.apiSockPath);
    const requestsBefore = w.requests().length;

    const bad = [
      '/rafs/a+b/lowerdir',
      '/rafs//lowerdir',
      '/rafs/x',
      '/rafs/x/lowerdir/',
      '/rafs/x/upperdir',
      '/rafs/a b/lowerdir',
      '/rafs/a/b/lowerdir',
      '/rafs/é/lowerdir',
      '/containers',
      '/',
      'rafs/x/lowerdir',
      './rafs/x/lowerdir',
      '/rafs/x\0/lowerdir',
      '/rafs/x/lowerdir\0',
      '',
      '/rafs/x/lowerdir\n',
    ];
    for (const mountpoint of bad) {
      for (const [what, p] of [
        ['mount', () => d.mount({ source: bootstrap, mountpoint, config })],
        ['umount', () => d.umount(mountpoint)],
      ]) {
        const err = await rejection(p(), `${what}(${JSON.stringify(mountpoint)})`);
        assert.ok(err instanceof InvalidOptionError, `${what}(${JSON.stringify(mountpoint)}): ${err && err.stack}`);
        assert.equal(err.code, 'ERR_INVALID_OPTION');
        assert.equal(err.option, 'mountpoint', `${what}(${JSON.stringify(mountpoint)})`);
      }
    }
    // Also the other fields of MountOption.
    const mp = '/rafs/ok/lowerdir';
    for (const [opt, option] of [
      [{ source: '', mountpoint: mp, config }, 'source'],
      [{ source: `${bootstrap}\0`, mountpoint: mp, config }, 'source'],
      [{ source: bootstrap, mountpoint: mp }, 'config'],
      [{ source: bootstrap, mountpoint: mp, config: { version: 2 } }, 'config'],
      [{ mountpoint: mp, config }, 'source'],
    ]) {
      const err = await rejection(d.mount(opt), `mount(${JSON.stringify(opt)})`);
      assert.ok(err instanceof InvalidOptionError, `mount(${JSON.stringify(opt)}): ${err && err.stack}`);
      assert.equal(err.option, option);
    }
    for (const opt of [undefined, null]) {
      const err = await rejection(d.mount(opt), `mount(${opt})`);
      assert.ok(err instanceof InvalidOptionError, `mount(${opt}): ${err && err.stack}`);
    }

    assert.equal(w.requests().length, requestsBefore, `no request reached nydusd: ${JSON.stringify(w.requests().slice(requestsBefore))}`);
    assert.deepEqual(Object.keys(await collection(w.apiSockPath)), Object.keys(before));

    // Valid ids: word characters, '.', '-', '_'.
    for (const id of ['a.b-c_d', 'A9', '0123456789abcdef0123456789abcdef', 'x', 'sha256-ab.cd_EF']) {
      const m = `/rafs/${id}/lowerdir`;
      await d.mount({ source: bootstrap, mountpoint: m, config });
      const coll = await collection(w.apiSockPath);
      assert.equal(coll[m]?.backend_type, 'Rafs', `${m}: ${JSON.stringify(coll)}`);
      await d.umount(m);
      assert.equal((await collection(w.apiSockPath))[m], undefined);
    }
    if (!REAL) {
      const after = w.requests().slice(requestsBefore);
      assert.equal(after.length, 10);
      assert.ok(after.every((r) => r.status === 204), JSON.stringify(after));
      assert.equal(after[0].mountpoint, '/rafs/a.b-c_d/lowerdir');
    }
    assert.ok(d.pid > 0, 'still running');
  });

  test("ids '.' and '..' are refused: /rafs/../lowerdir would mount outside /rafs", async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    await d.start(w.onQuit);
    const requestsBefore = w.requests().length;
    const accepted = [];
    for (const mountpoint of ['/rafs/../lowerdir', '/rafs/./lowerdir']) {
      const r = await Promise.allSettled([d.mount({ source: bootstrap, mountpoint, config })]);
      if (r[0].status === 'fulfilled') {
        accepted.push(mountpoint);
        await d.umount(mountpoint).catch(() => {});
      } else {
        assert.ok(r[0].reason instanceof InvalidOptionError, `${mountpoint}: ${r[0].reason && r[0].reason.stack}`);
        assert.equal(r[0].reason.option, 'mountpoint');
      }
    }
    const reached = w.requests().slice(requestsBefore).map((r) => `${r.method} ${r.mountpoint} -> ${r.status}`);
    assert.deepEqual(accepted, [],
      `accepted and sent to nydusd (which walks '..' and '.': '/rafs/../lowerdir' is '/lowerdir'): ${JSON.stringify(reached)}`);
  });

  test('API errors: mounting twice -> NydusApiError 500 UNDEFINED; umount of nothing -> NydusApiError', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    const pid = await d.start(w.onQuit);
    const mp = '/rafs/twice/lowerdir';
    await d.mount({ source: bootstrap, mountpoint: mp, config });

    const err = await rejection(d.mount({ source: bootstrap, mountpoint: mp, config }), 'second mount');
    assert.ok(err instanceof NydusApiError, `NydusApiError expected: ${err && err.stack}`);
    assert.ok(err instanceof VirtiofsDaemonError);
    assert.equal(err.code, 'ERR_NYDUS_API');
    assert.equal(err.status, 500);
    assert.equal(err.apiCode, 'UNDEFINED');
    assert.match(err.apiMessage, /already ?exists/i);
    assert.ok(err.message.includes(err.apiMessage), `message ${JSON.stringify(err.message)} should contain the server's ${JSON.stringify(err.apiMessage)}`);

    const err2 = await rejection(d.umount('/rafs/never-mounted/lowerdir'), 'umount of nothing');
    assert.ok(err2 instanceof NydusApiError, `NydusApiError expected: ${err2 && err2.stack}`);
    assert.equal(err2.code, 'ERR_NYDUS_API');
    assert.equal(err2.status, 500);
    assert.equal(err2.apiCode, 'UNDEFINED');
    assert.match(err2.apiMessage, /doesn't exist|not ?found|does not exist/i);
    assert.ok(err2.message.includes(err2.apiMessage));

    // A bad RAFS source and a bad config are the server's to refuse, with its message.
    const err3 = await rejection(
      d.mount({ source: path.join(w.dir, 'no-such-bootstrap'), mountpoint: '/rafs/nosrc/lowerdir', config }),
      'mount of a missing bootstrap',
    );
    assert.ok(err3 instanceof NydusApiError, `NydusApiError expected: ${err3 && err3.stack}`);
    assert.ok(err3.status >= 400, `status ${err3.status}`);
    const err4 = await rejection(d.mount({ source: bootstrap, mountpoint: '/rafs/badcfg/lowerdir', config: '{"nope":1}' }), 'bad config');
    assert.ok(err4 instanceof NydusApiError, `NydusApiError expected: ${err4 && err4.stack}`);
    assert.ok(err4.status >= 400, `status ${err4.status}`);

    // None of that hurt the daemon; the first mount is still there and can be removed.
    assert.equal(d.pid, pid);
    await d.umount(mp);
    await d.stop();
    assert.equal(w.quits.length, 1);
    assertSocketsGone(w);
  });

  test('mount/umount when not running -> ERR_DAEMON_NOT_RUNNING (never started, starting, stopped)', async (t) => {
    const w = world(t);
    const { bootstrap, config } = rafsImage(w.dir);
    const opt = { source: bootstrap, mountpoint: '/rafs/x/lowerdir', config };
    const notRunning = async (p, what) => {
      const err = await rejection(p, what);
      assert.ok(err instanceof VirtiofsDaemonError, `${what}: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_NOT_RUNNING', `${what}: ${err.message}`);
    };
    const d = w.make();
    await notRunning(d.mount(opt), 'mount, never started');
    await notRunning(d.umount(opt.mountpoint), 'umount, never started');

    const starting = d.start(w.onQuit);
    await notRunning(d.mount(opt), 'mount while starting');
    await notRunning(d.umount(opt.mountpoint), 'umount while starting');
    await starting;
    await d.mount(opt);
    await d.umount(opt.mountpoint);
    await d.stop();
    await notRunning(d.mount(opt), 'mount after stop');
    await notRunning(d.umount(opt.mountpoint), 'umount after stop');
    if (!REAL) assert.equal(w.requests().filter((r) => r.mountpoint === opt.mountpoint).length, 2);
  });

  standinTest('a slow API (SLOW_MS=400) still works within the timeouts', 'needs NYDUSD_STANDIN_SLOW_MS', async (t) => {
    const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '400' } });
    const { bootstrap, config } = rafsImage(w.dir);
    const d = w.make();
    let t0 = Date.now();
    const pid = await d.start(w.onQuit);
    const startMs = Date.now() - t0;
    // At least one probe and the share mount, each delayed by 400 ms.
    assert.ok(startMs >= 800, `start took ${startMs} ms; the knob should have slowed it`);
    t0 = Date.now();
    await d.mount({ source: bootstrap, mountpoint: '/rafs/slow/lowerdir', config });
    const mountMs = Date.now() - t0;
    assert.ok(mountMs >= 400, `mount took ${mountMs} ms`);
    await d.umount('/rafs/slow/lowerdir');
    await d.stop();
    await assertNothingLeft(pid, w.dir);
    assertSocketsGone(w);
    t.diagnostic(`start ${startMs} ms, mount ${mountMs} ms`);
  });

  standinTest('a mount slower than apiTimeoutMs -> NydusApiError ERR_NYDUS_API_TIMEOUT; the daemon keeps running',
    'needs NYDUSD_STANDIN_SLOW_MS', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '300' } });
      const { bootstrap, config } = rafsImage(w.dir);
      const d = w.make({ apiTimeoutMs: 1000 });
      const pid = await d.start(w.onQuit);
      // nydusd serves one request at a time: three requests ahead make our mount wait 1200 ms.
      const other = new NydusClient(w.apiSockPath, { timeoutMs: 5000 });
      t.after(() => other.close());
      const ahead = [other.daemonInfo(), other.daemonInfo(), other.daemonInfo()];
      await sleep(50);
      const mp = '/rafs/late/lowerdir';
      const t0 = Date.now();
      const err = await rejection(d.mount({ source: bootstrap, mountpoint: mp, config }), 'mount');
      const ms = Date.now() - t0;
      assert.ok(err instanceof NydusApiError, `NydusApiError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_NYDUS_API_TIMEOUT');
      assert.ok(ms >= 950 && ms < 2500, `timed out after ${ms} ms`);
      await Promise.all(ahead);
      assert.equal(d.pid, pid, 'still running');
      // The abandoned request may still have been served: nydusd cannot cancel it.
      await sleep(400);
      if ((await collection(w.apiSockPath))[mp]) await d.umount(mp);
      await d.mount({ source: bootstrap, mountpoint: mp, config });
      await d.umount(mp);
      await d.stop();
      await assertNothingLeft(pid, w.dir);
    });
});

// ---------------------------------------------------------------------------------------------
// Validation

describe('validation: InvalidOptionError before anything is created', () => {
  const longSock = (dir, bytes) => path.join(dir, 'x'.repeat(bytes - dir.length - 1));

  const cases = [
    ['empty sockPath', () => ({ sockPath: '' }), 'sockPath'],
    ['sockPath not given', () => ({ sockPath: undefined }), 'sockPath'],
    ['empty apiSockPath', () => ({ apiSockPath: '' }), 'apiSockPath'],
    ['apiSockPath not given', () => ({ apiSockPath: undefined }), 'apiSockPath'],
    ['empty sourcePath', () => ({ sourcePath: '' }), 'sourcePath'],
    ['sourcePath not given', () => ({ sourcePath: undefined }), 'sourcePath'],
    ['empty path (binary)', () => ({ path: '' }), 'path'],
    ['binary missing', (w) => ({ path: path.join(w.dir, 'no-such-nydusd') }), 'path'],
    ['binary not executable', (w) => ({ path: w.notExec }), 'path'],
    ['binary is a directory', (w) => ({ path: w.dir }), 'path'],
    ['source missing', (w) => ({ sourcePath: path.join(w.dir, 'no-such-dir') }), 'sourcePath'],
    ['source is a file', (w) => ({ sourcePath: w.file }), 'sourcePath'],
    ['sockPath directory missing', (w) => ({ sockPath: path.join(w.dir, 'no-such-dir', 'v.sock') }), 'sockPath'],
    ['apiSockPath directory missing', (w) => ({ apiSockPath: path.join(w.dir, 'no-such-dir', 'a.sock') }), 'apiSockPath'],
    ['sockPath directory is a file', (w) => ({ sockPath: path.join(w.file, 'v.sock') }), 'sockPath'],
    ['sockPath == apiSockPath', (w) => ({ apiSockPath: w.sockPath }), /^(sockPath|apiSockPath)$/],
    // The same file spelt differently: nydusd would bind the API over its own vhost-user socket.
    ['apiSockPath names the same file as sockPath (<dir>/./v.sock)', (w) => ({ apiSockPath: `${w.dir}/./v.sock` }), /^(sockPath|apiSockPath)$/],
    ['apiSockPath names the same file as sockPath (<dir>//v.sock)', (w) => ({ apiSockPath: `${w.dir}//v.sock` }), /^(sockPath|apiSockPath)$/],
    ['sockPath of 108 bytes', (w) => ({ sockPath: longSock(w.dir, 108) }), 'sockPath'],
    ['apiSockPath of 108 bytes', (w) => ({ apiSockPath: longSock(w.dir, 108) }), 'apiSockPath'],
    ['NUL byte in path', (w) => ({ path: `${w.wrapper}\0x` }), 'path'],
    ['NUL byte in sockPath', (w) => ({ sockPath: `${w.sockPath}\0x` }), 'sockPath'],
    ['NUL byte in apiSockPath', (w) => ({ apiSockPath: `${w.apiSockPath}\0x` }), 'apiSockPath'],
    ['NUL byte in sourcePath', (w) => ({ sourcePath: `${w.share}\0x` }), 'sourcePath'],
    ['NUL byte in extraArgs[1]', () => ({ extraArgs: ['--rlimit-nofile', '0\0'] }), 'extraArgs[1]'],
    ['extraArgs not an array', () => ({ extraArgs: '--rlimit-nofile' }), 'extraArgs'],
    ['extraArgs entry not a string', () => ({ extraArgs: [0] }), 'extraArgs[0]'],
  ];

  for (const [name, make, option] of cases) {
    test(name, async (t) => {
      const w = world(t);
      w.file = path.join(w.dir, 'file');
      fs.writeFileSync(w.file, 'x');
      w.notExec = path.join(w.dir, 'not-exec');
      fs.writeFileSync(w.notExec, `#!/bin/sh\nexec '${DAEMON}' "$@"\n`);
      fs.chmodSync(w.notExec, 0o644);
      // Stale sockets at both valid paths: a validation failure must not remove them either.
      const inoSock = staleSocket(w.sockPath);
      const inoApi = staleSocket(w.apiSockPath);
      const listing = fs.readdirSync(w.dir).sort();

      const d = w.make({ path: w.wrapper, ...make(w) });
      let p;
      assert.doesNotThrow(() => {
        p = d.start(w.onQuit);
      }, 'start() rejects, it does not throw');
      const [r] = await Promise.allSettled([p]);
      if (r.status === 'fulfilled') {
        assert.fail(`${name}: start() resolved pid ${r.value} instead of rejecting; the dir now holds ` +
          `${JSON.stringify(fs.readdirSync(w.dir).sort())} (sockets: ${JSON.stringify(fs.readdirSync(w.dir).filter((f) => isSocket(path.join(w.dir, f))))})`);
      }
      const err = r.reason;
      assert.ok(err instanceof InvalidOptionError, `InvalidOptionError expected, got ${err && err.stack}`);
      assert.equal(err.code, 'ERR_INVALID_OPTION');
      if (option instanceof RegExp) assert.match(err.option, option);
      else assert.equal(err.option, option);
      assert.ok(err.message.startsWith(`${err.option}: `), err.message);

      assert.equal(d.pid, 0);
      assert.equal(w.ran(), 0, 'the binary was never run');
      assert.deepEqual(fs.readdirSync(w.dir).sort(), listing, 'no file created or removed');
      assert.equal(fs.lstatSync(w.sockPath).ino, inoSock, 'stale sockPath untouched');
      assert.equal(fs.lstatSync(w.apiSockPath).ino, inoApi, 'stale apiSockPath untouched');
      assert.deepEqual(w.quits, []);
      // Nothing is wedged: a second start fails the same way, not with DaemonRunningError.
      const again = await rejection(d.start(w.onQuit), `${name} (again)`);
      assert.ok(again instanceof InvalidOptionError, `again: ${again && again.stack}`);
      assert.equal(again.option, err.option);
      assert.equal(w.ran(), 0);
      // stop() of a daemon that never started is a no-op.
      await d.stop();
      await assertNothingLeft(0, w.dir);
    });
  }

  test('path not given: $NYDUSD is used, and an error names $NYDUSD', async (t) => {
    const w = world(t);
    const saved = process.env.NYDUSD;
    t.after(() => {
      if (saved === undefined) delete process.env.NYDUSD;
      else process.env.NYDUSD = saved;
    });
    process.env.NYDUSD = path.join(w.dir, 'no-such-nydusd');
    const d = w.make({ path: undefined });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof InvalidOptionError, `InvalidOptionError expected: ${err && err.stack}`);
    assert.equal(err.option, '$NYDUSD');
    assert.equal(d.pid, 0);
    process.env.NYDUSD = w.wrapper;
    const pid = await d.start(w.onQuit);
    assert.equal(w.ran(), 1, 'the binary from $NYDUSD ran');
    await d.stop();
    await assertNothingLeft(pid, w.dir);
  });

  test('a binary that cannot be executed (ENOEXEC) -> a typed error, nothing left, start can be retried', async (t) => {
    const w = world(t);
    const garbage = path.join(w.dir, 'not-a-program');
    fs.writeFileSync(garbage, 'this is not a program\n');
    fs.chmodSync(garbage, 0o755);
    staleSocket(w.sockPath);
    const d = w.make({ path: garbage });
    for (const attempt of [1, 2]) {
      const err = await rejection(d.start(w.onQuit), `start #${attempt}`);
      assert.ok(err instanceof VirtiofsDaemonError, `attempt ${attempt}: ${err && err.stack}`);
      assert.equal(err.code, 'ENOEXEC', `attempt ${attempt}: ${err.message}`);
      assert.equal(d.pid, 0);
    }
    // The version probe (`--version`) fails first, before anything is touched.
    assert.equal(isSocket(w.sockPath), true, 'the stale socket is left as it was');
    assert.equal(exists(w.apiSockPath), false);
    assert.deepEqual(w.quits, []);
    await d.stop();
    fs.rmSync(w.sockPath);
    await assertNothingLeft(0, w.dir);
  });

  test('start while running or starting -> DaemonRunningError; the running daemon is untouched', async (t) => {
    const w = world(t);
    const d = w.make({ path: w.wrapper });
    const first = d.start(w.onQuit);
    const whileStarting = await rejection(d.start(w.onQuit), 'start while starting');
    assert.ok(whileStarting instanceof DaemonRunningError, `DaemonRunningError expected: ${whileStarting && whileStarting.stack}`);
    assert.equal(whileStarting.code, 'ERR_DAEMON_RUNNING');
    const pid = await first;
    const err = await rejection(d.start(w.onQuit), 'start while running');
    assert.ok(err instanceof DaemonRunningError, `DaemonRunningError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_RUNNING');
    assert.match(err.message, new RegExp(`pid ${pid}`));
    assert.equal(d.pid, pid);
    assert.equal(w.ran(), 1, 'one process started');
    assert.ok(isSocket(w.sockPath) && isSocket(w.apiSockPath), 'its sockets are untouched');
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    await d.stop();
    assert.equal(w.quits.length, 1);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });
});

// ---------------------------------------------------------------------------------------------
// Sockets left at the paths

describe('what is at the socket paths before start', () => {
  test('stale sockets at sockPath and apiSockPath are removed and start succeeds', async (t) => {
    const w = world(t);
    staleSocket(w.sockPath);
    staleSocket(w.apiSockPath);
    assert.equal(await tryConnect(w.sockPath), 'ECONNREFUSED', 'stale: nobody listens');
    assert.equal(await tryConnect(w.apiSockPath), 'ECONNREFUSED', 'stale: nobody listens');
    // nydusd unlinks its paths itself before binding: this wrapper notes what the library left
    // there at exec time, so that we see the library's own removal.
    const seen = path.join(w.dir, 'seen');
    const wrapper = script(path.join(w.dir, 'seeing-nydusd'),
      `[ "$1" = --version ] && exec '${DAEMON}' "$@"\n` +
      `for p in '${w.sockPath}' '${w.apiSockPath}'; do if [ -e "$p" ]; then echo "present $p" >> '${seen}'; fi; done\n` +
      `echo exec >> '${seen}'\nexec '${DAEMON}' "$@"`);
    const d = w.make({ path: wrapper });
    const pid = await d.start(w.onQuit);
    assert.ok(pid > 0);
    assert.equal(fs.readFileSync(seen, 'utf8'), 'exec\n', 'both stale sockets were removed before the daemon ran');
    assert.ok(isSocket(w.sockPath) && isSocket(w.apiSockPath));
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    // (A real nydusd would take a connection to --sock for its VMM: only the stand-in is tried.)
    if (!REAL) assert.equal(await tryConnect(w.sockPath), 'connected');
    await d.stop();
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });

  for (const which of ['sockPath', 'apiSockPath']) {
    test(`a regular file at ${which} -> start rejects, nothing runs, the file is intact`, async (t) => {
      const w = world(t);
      const file = w[which];
      const content = `precious data at ${which}\n`;
      fs.writeFileSync(file, content);
      const ino = fs.lstatSync(file).ino;
      const d = w.make({ path: w.wrapper });
      const err = await rejection(d.start(w.onQuit), 'start');
      assert.ok(err instanceof VirtiofsDaemonError, `a typed error expected: ${err && err.stack}`);
      assert.ok(err.message.includes(file), `the message names the path: ${err.message}`);
      assert.equal(err.code, 'EEXIST');
      assert.equal(err.option, which, 'the error names the option at fault');
      t.diagnostic(`${err.name} code=${err.code}: ${err.message}`);
      assert.equal(fs.readFileSync(file, 'utf8'), content, 'content intact');
      assert.equal(fs.lstatSync(file).ino, ino, 'same file');
      assert.equal(w.ran(), 0, 'nothing started');
      assert.equal(d.pid, 0);
      const other = which === 'sockPath' ? w.apiSockPath : w.sockPath;
      assert.equal(exists(other), false, 'no socket created at the other path');
      assert.deepEqual(w.quits, []);
      await d.stop();
    });
  }

  test('a live listener at apiSockPath -> start rejects, the listener keeps its socket', async (t) => {
    const w = world(t);
    const server = net.createServer((c) => c.destroy());
    await new Promise((r) => server.listen(w.apiSockPath, r));
    t.after(() => server.close());
    const ino = fs.lstatSync(w.apiSockPath).ino;
    const d = w.make({ path: w.wrapper });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof VirtiofsDaemonError, `a typed error expected: ${err && err.stack}`);
    t.diagnostic(`${err.name} code=${err.code}: ${err.message}`);
    assert.equal(fs.lstatSync(w.apiSockPath).ino, ino, 'the live socket stays');
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    assert.equal(w.ran(), 0, 'nothing started');
    assert.equal(exists(w.sockPath), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Start failures

describe('start failures stop the process and remove the sockets', () => {
  standinTest('a nydusd that exits early (EXIT_EARLY=3) -> ERR_DAEMON_EXITED at once, with its last lines',
    'needs NYDUSD_STANDIN_EXIT_EARLY', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_EXIT_EARLY: '3' } });
      const d = w.make({ startTimeoutMs: 10000 });
      const t0 = Date.now();
      const err = await rejection(d.start(w.onQuit), 'start');
      const ms = Date.now() - t0;
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_EXITED');
      assert.deepEqual(err.exit, { code: 3, signal: null });
      assert.ok(err.lastLines.some((l) => l.includes('NYDUSD_STANDIN_EXIT_EARLY=3')), JSON.stringify(err.lastLines));
      assert.ok(err.lastLines.some((l) => l.startsWith('Error: ')), JSON.stringify(err.lastLines));
      assert.ok(err.message.includes('NYDUSD_STANDIN_EXIT_EARLY=3'), 'the message carries the last lines');
      assert.deepEqual(err.argv, [DAEMON, ...buildNydusdArgs({ sockPath: w.sockPath, apiSockPath: w.apiSockPath, debug: false, extraArgs: [] })]);
      assert.ok(ms < 3000, `rejected after ${ms} ms; should be well before the 10 s start timeout`);
      // The stand-in leaves its vhost-user socket behind; start removed it.
      assertSocketsGone(w);
      assert.equal(d.pid, 0);
      await assertNothingLeft(0, w.dir);
      await sleep(200);
      assert.deepEqual(w.quits, [], 'onQuit is not called for a start that failed');
      // The error lines were logged as nydusd's, at their level.
      assert.ok(w.records.some((r) => r.subsystem === 'nydusd' && r.level === 50 && /EXIT_EARLY/.test(r.msg)),
        JSON.stringify(w.records.map((r) => [r.level, r.msg])));
      t.diagnostic(`rejected after ${ms} ms`);
      await d.stop();
    });

  standinTest('a nydusd that never becomes RUNNING -> ERR_DAEMON_START_TIMEOUT, stopped, sockets removed',
    'needs NYDUSD_STANDIN_NEVER_RUNNING', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_NEVER_RUNNING: '1' } });
      const startTimeoutMs = 1500;
      const stopTimeoutMs = 5000;
      const d = w.make({ startTimeoutMs, stopTimeoutMs });
      let pid = 0;
      const watcher = setInterval(() => (pid ||= d.pid), 5);
      const t0 = Date.now();
      const err = await rejection(d.start(w.onQuit), 'start');
      const ms = Date.now() - t0;
      clearInterval(watcher);
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
      assert.equal(err.exit, null);
      assert.match(err.message, /INIT/, 'the last state seen is reported');
      assert.ok(ms < startTimeoutMs + stopTimeoutMs + 2000, `rejected after ${ms} ms`);
      assert.ok(pid > 0, 'a process was started');
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      await sleep(100);
      assert.deepEqual(w.quits, []);
      t.diagnostic(`rejected after ${ms} ms (deadline ${startTimeoutMs} ms)`);
    });

  standinTest('the share cannot be mounted (source removed meanwhile) -> ERR_DAEMON_START with the API error; stopped',
    'needs NYDUSD_STANDIN_INIT_MS', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_INIT_MS: '600' } });
      const d = w.make();
      const starting = d.start(w.onQuit);
      const pid = await h.waitFor(() => d.pid, { timeoutMs: 5000, what: 'the spawn' });
      fs.rmSync(w.share, { recursive: true });
      const err = await rejection(starting, 'start');
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START');
      assert.ok(err.cause instanceof NydusApiError, `cause: ${err.cause && err.cause.stack}`);
      assert.equal(err.cause.status, 500);
      assert.match(err.message, /\/containers/);
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.deepEqual(w.quits, []);
      if (!REAL) {
        const reqs = w.requests();
        assert.equal(reqs.length, 1);
        assert.equal(reqs[0].status, 500);
      }
    });

  standinTest('the share mount times out (apiTimeoutMs) -> ERR_DAEMON_START, stopped, sockets removed',
    'needs NYDUSD_STANDIN_SLOW_MS', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '500' } });
      const d = w.make({ probeTimeoutMs: 3000, apiTimeoutMs: 200 });
      let pid = 0;
      const watcher = setInterval(() => (pid ||= d.pid), 5);
      const err = await rejection(d.start(w.onQuit), 'start');
      clearInterval(watcher);
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START');
      assert.ok(err.cause instanceof NydusApiError, `cause: ${err.cause && err.cause.stack}`);
      assert.equal(err.cause.code, 'ERR_NYDUS_API_TIMEOUT');
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.deepEqual(w.quits, []);
    });

  /**
   * A fake nydusd (Node, HTTP on --apisock, a plain listener on --sock) whose GET /api/v1/daemon
   * answers INIT until the wall-clock time $FAKE_RUNNING_AT, then RUNNING; with FAKE_MODE=hang
   * its API accepts connections and never answers. Mounts answer 204 after $FAKE_MOUNT_DELAY ms.
   * SIGTERM exits 0. $FAKE_LOG gets a line per probe and one for SIGTERM.
   */
  function fakeNydusd(dir) {
    const file = path.join(dir, 'fake-nydusd.js');
    fs.writeFileSync(file, `#!${process.execPath}
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const argv = process.argv.slice(2);
const arg = (f) => argv[argv.indexOf(f) + 1];
const api = arg('--apisock');
const sock = arg('--sock');
const runningAt = Number(process.env.FAKE_RUNNING_AT || 0);
const note = (what) => { if (process.env.FAKE_LOG) fs.appendFileSync(process.env.FAKE_LOG, what + ' ' + Date.now() + '\\n'); };
const unlink = (p) => { try { fs.unlinkSync(p); } catch {} };
unlink(sock);
unlink(api);
net.createServer((c) => c.resume()).listen(sock);
const server = process.env.FAKE_MODE === 'hang'
  ? net.createServer((c) => c.resume())
  : http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET' && req.url === '/api/v1/daemon') {
          note('GET');
          const state = Date.now() >= runningAt ? 'RUNNING' : 'INIT';
          const body = JSON.stringify({ version: {}, id: null, supervisor: null, state, backend_collection: {} });
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
          res.end(body);
        } else if (req.url.startsWith('/api/v1/mount')) {
          setTimeout(() => {
            res.writeHead(204);
            res.end();
          }, Number(process.env.FAKE_MOUNT_DELAY || 0));
        } else {
          res.writeHead(404);
          res.end();
        }
      });
    });
server.listen(api, () => console.error('fake nydusd: API at ' + api));
process.on('SIGTERM', () => { note('SIGTERM'); unlink(api); unlink(sock); process.exit(0); });
`);
    fs.chmodSync(file, 0o755);
    return file;
  }

  test('the start deadline is honoured: no ERR_DAEMON_START_TIMEOUT before startTimeoutMs has passed', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    const startTimeoutMs = 1500;
    w.env.FAKE_RUNNING_AT = String(Date.now() + 3600e3); // INIT for an hour
    w.env.FAKE_LOG = path.join(w.dir, 'fake.log');
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs });
    const t0 = Date.now();
    const err = await rejection(d.start(w.onQuit), 'start');
    const ms = Date.now() - t0;
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
    const log = fs.readFileSync(w.env.FAKE_LOG, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
    // The deadline starts once the process is spawned, right after the "nydusd started" record.
    const started = w.records.find((r) => r.msg === 'nydusd started');
    assert.ok(started, 'a "nydusd started" record');
    const base = started.time;
    const probes = log.filter(([what]) => what === 'GET').map(([, at]) => Number(at) - base);
    const termAt = Number((log.find(([what]) => what === 'SIGTERM') || [])[1]) - base;
    t.diagnostic(`after the spawn: probes at +${probes.join(', +')} ms; SIGTERM (gave up) at +${termAt} ms; ` +
      `start() rejected ${ms} ms after it was called`);
    assert.ok(probes.length > 0, 'the API was probed');
    assert.ok(termAt >= startTimeoutMs - 10,
      `start gave up (SIGTERM) ${termAt} ms after the spawn, before its ${startTimeoutMs} ms deadline; ` +
      `last probe at +${probes.at(-1)} ms: a daemon turning RUNNING in the last ${startTimeoutMs - probes.at(-1)} ms is refused`);
    assertSocketsGone(w);
    assert.deepEqual(w.quits, []);
  });

  test('startTimeoutMs also bounds the share mount (as NydusdOptions documents)', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    const startTimeoutMs = 1500;
    w.env.FAKE_MOUNT_DELAY = '4000';
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs });
    const t0 = Date.now();
    const [r] = await Promise.allSettled([d.start(w.onQuit)]);
    const ms = Date.now() - t0;
    t.diagnostic(`start ${r.status} after ${ms} ms (${r.status === 'rejected' ? r.reason.code : `pid ${r.value}`})`);
    // "Overall deadline for the API to answer RUNNING and the share to be mounted."
    assert.ok(ms < startTimeoutMs + 1000,
      `start() settled (${r.status}) only after ${ms} ms with startTimeoutMs ${startTimeoutMs}: ` +
      'the /containers mount is bounded by apiTimeoutMs (30 s by default), not by the start deadline');
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof DaemonStartError, `DaemonStartError expected: ${r.reason && r.reason.stack}`);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
  });

  test('a probe that never gets an answer is bounded by probeTimeoutMs; the whole by the deadline', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    w.env.FAKE_MODE = 'hang';
    const startTimeoutMs = 1500;
    const probeTimeoutMs = 300;
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs, probeTimeoutMs });
    let pid = 0;
    const watcher = setInterval(() => (pid ||= d.pid), 5);
    const t0 = Date.now();
    const err = await rejection(d.start(w.onQuit), 'start');
    const ms = Date.now() - t0;
    clearInterval(watcher);
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
    assert.match(err.message, new RegExp(`${probeTimeoutMs} ms`), 'the last probe error (its timeout) is reported');
    assert.ok(ms < startTimeoutMs + probeTimeoutMs + 2000, `rejected after ${ms} ms`);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    assert.deepEqual(w.quits, []);
    t.diagnostic(`rejected after ${ms} ms`);
  });

  test("the daemon's stdout and stderr both reach the log and lastLines", async (t) => {
    const w = world(t);
    const fake = script(path.join(w.dir, 'fake-nydusd'),
      `echo "out: hello on stdout"\necho "[2024-01-01 00:00:00.000000 +00:00] ERROR err: hello on stderr" >&2\nexit 7`);
    const d = w.make({ path: fake, version: '2.2.3' });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_EXITED');
    assert.deepEqual(err.exit, { code: 7, signal: null });
    assert.ok(err.lastLines.some((l) => l.includes('hello on stdout')), JSON.stringify(err.lastLines));
    assert.ok(err.lastLines.some((l) => l.includes('hello on stderr')), JSON.stringify(err.lastLines));
    const msgs = w.records.filter((r) => r.subsystem === 'nydusd').map((r) => r.msg);
    assert.ok(msgs.some((m) => m.includes('hello on stdout')), JSON.stringify(msgs));
    assert.ok(msgs.some((m) => m.includes('hello on stderr')), JSON.stringify(msgs));
    assert.deepEqual(w.quits, []);
    assertSocketsGone(w);
  });
});

// ---------------------------------------------------------------------------------------------
// Stop and quit

describe('stop and onQuit', () => {
  standinTest('a nydusd that ignores SIGTERM -> SIGKILL after stopTimeoutMs; onQuit {signal: SIGKILL, requested: true}',
    'needs NYDUSD_STANDIN_IGNORE_SIGTERM', async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_IGNORE_SIGTERM: '1' } });
      const d = w.make({ stopTimeoutMs: 500 });
      const pid = await d.start(w.onQuit);
      const t0 = Date.now();
      await d.stop();
      const ms = Date.now() - t0;
      assert.ok(ms >= 450, `stop resolved after ${ms} ms, before stopTimeoutMs`);
      assert.ok(ms < 3500, `stop took ${ms} ms`);
      assert.equal(w.quits.length, 1, JSON.stringify(w.quits));
      assert.deepEqual(w.quits[0].exit, { code: null, signal: 'SIGKILL', requested: true, known: true });
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.ok(w.records.some((r) => /ignored SIGTERM/.test(r.msg)), 'the escalation is logged');
      await sleep(100);
      assert.equal(w.quits.length, 1);
      t.diagnostic(`stop took ${ms} ms`);
    });

  test('an external SIGKILL -> onQuit once {code: null, signal: SIGKILL, requested: false}; later stop() resolves; restart works', async (t) => {
    const w = world(t);
    const d = w.make();
    const pid = await d.start(w.onQuit);
    const quitSeen = new Promise((resolve) => {
      const iv = setInterval(() => {
        if (w.quits.length) {
          clearInterval(iv);
          resolve();
        }
      }, 5);
    });
    process.kill(pid, 'SIGKILL');
    await Promise.race([quitSeen, sleep(5000)]);
    assert.equal(w.quits.length, 1, 'onQuit called');
    assert.deepEqual(w.quits[0].exit, { code: null, signal: 'SIGKILL', requested: false, known: true });
    assert.equal(w.quits[0].sockExisted, false, 'sockPath removed before onQuit');
    assert.equal(w.quits[0].apiSockExisted, false, 'apiSockPath removed before onQuit');
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    await d.stop();
    await d.stop();
    assert.equal(w.quits.length, 1, 'still once');
    const err = await rejection(d.umount('/rafs/x/lowerdir'), 'umount after the crash');
    assert.equal(err.code, 'ERR_DAEMON_NOT_RUNNING');

    // The same instance starts again (Kata restarts a crashed daemon), with a fresh onQuit.
    const quits2 = [];
    const pid2 = await d.start((e) => quits2.push(e));
    assert.ok(pid2 > 0 && pid2 !== pid);
    await d.stop();
    assert.equal(quits2.length, 1);
    assert.equal(quits2[0].requested, true);
    assert.equal(w.quits.length, 1, 'the first onQuit is not called again');
    assertSocketsGone(w);
    await assertNothingLeft(pid2, w.dir);
  });

  standinTest('an external SIGTERM (graceful exit 0) -> onQuit {code: 0, requested: false}', 'the real nydusd does not exit on SIGTERM without a VMM', async (t) => {
    const w = world(t);
    const d = w.make();
    const pid = await d.start(w.onQuit);
    process.kill(pid, 'SIGTERM');
    await h.waitFor(() => w.quits.length > 0, { timeoutMs: 5000, what: 'onQuit' });
    assert.deepEqual(w.quits[0].exit, { code: 0, signal: null, requested: false, known: true });
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    await d.stop();
    assert.equal(w.quits.length, 1);
  });

  test('concurrent stop() calls share one stop; stop() when never started resolves', async (t) => {
    const w = world(t);
    const d = w.make();
    await d.stop();
    await Promise.all([d.stop(), d.stop()]);
    assert.equal(w.ran(), 0);
    const pid = await d.start(w.onQuit);
    const p1 = d.stop();
    const p2 = d.stop();
    const results = await Promise.allSettled([p1, p2]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled']);
    assert.equal(w.quits.length, 1);
    assert.equal(w.quits[0].exit.requested, true);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    await d.stop();
    assert.equal(w.quits.length, 1);
  });

  test('stop() while start() is still validating: once both settle, nothing runs', async (t) => {
    const w = world(t);
    const d = w.make({ path: w.wrapper });
    const starting = d.start(w.onQuit);
    // Called synchronously: start() is still in its (async) validation, nothing is spawned yet.
    const stopping = d.stop();
    let stopResolvedWhileRunning = false;
    await stopping.then(() => {
      stopResolvedWhileRunning = d.pid !== 0;
    });
    const started = await Promise.allSettled([starting]);
    // Either start rejected, or stop() waited for it and then stopped what it made.
    await sleep(300);
    const pid = started[0].status === 'fulfilled' ? started[0].value : 0;
    const running = d.pid;
    if (running) await d.stop();
    assert.equal(running, 0,
      `stop() resolved (daemon pid at that moment: ${stopResolvedWhileRunning ? 'running' : 'none yet'}) and then start() ` +
      `${started[0].status === 'fulfilled' ? `resolved pid ${pid}` : 'rejected'}: nydusd is left running after stop() resolved`);
    if (pid) await assertNothingLeft(pid, w.dir);
    assertSocketsGone(w);
  });

  test('stop() during the readiness wait: start rejects, nothing runs, no onQuit', async (t) => {
    const w = world(t);
    const d = w.make();
    const starting = d.start(w.onQuit);
    const pid = await h.waitFor(() => d.pid, { timeoutMs: 5000, what: 'the spawn' });
    await d.stop();
    const r = await Promise.allSettled([starting]);
    assert.equal(d.pid, 0);
    if (r[0].status === 'rejected') {
      assert.ok(r[0].reason instanceof DaemonStartError, `DaemonStartError expected: ${r[0].reason && r[0].reason.stack}`);
      assert.deepEqual(w.quits, []);
    } else {
      // A start that won the race is stopped all the same: onQuit reports the stop.
      assert.equal(w.quits.length, 1);
    }
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });
});

// ---------------------------------------------------------------------------------------------
// Stress

describe('200 start/stop cycles', () => {
  test('fds, zombies, processes, sockets and RSS back to baseline', { timeout: 600000 }, async (t) => {
    const TOTAL = 200;
    // 4 daemons at a time keep the run short (each stand-in start is a Node start-up, ~150-250 ms);
    // NYDUSD_TEST_PARALLEL=1 runs them one after the other.
    const PARALLEL = Math.max(1, Number(process.env.NYDUSD_TEST_PARALLEL) || 4);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nyds-'));
    t.after(() => {
      killMentioning(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const env = daemonEnv(null);
    const { logger, counter } = countingLogger();
    const slots = Array.from({ length: PARALLEL }, (_, i) => ({
      sockPath: path.join(dir, `v${i}.sock`),
      apiSockPath: path.join(dir, `a${i}.sock`),
    }));
    const pgids = new Set();
    const durations = [];
    const live = new Set();
    t.after(async () => {
      for (const d of live) await Promise.race([d.stop().catch(() => {}), sleep(15000)]);
    });

    async function cycle(slot) {
      const t0 = Date.now();
      const quits = [];
      const d = new Nydusd({
        path: DAEMON, ...slot, sourcePath: share, env, logger, stopTimeoutMs: REAL ? 300 : 5000,
      });
      live.add(d);
      const pid = await d.start((e) => quits.push(e));
      pgids.add(pid);
      assert.ok(pid > 0);
      assert.equal(d.pid, pid);
      await d.stop();
      live.delete(d);
      assert.equal(d.pid, 0);
      assert.equal(quits.length, 1, `onQuit once per daemon (pid ${pid})`);
      assert.equal(quits[0].requested, true);
      if (!REAL) assert.deepEqual(quits[0], { code: 0, signal: null, requested: true, known: true });
      assert.equal(exists(slot.sockPath) || exists(slot.apiSockPath), false, `sockets of pid ${pid} removed`);
      durations.push(Date.now() - t0);
    }

    // Warm-up: load the addon, pino's children, the http agent..., then take the baselines.
    await cycle(slots[0]);
    await sleep(100);
    const fd0 = h.fdCount();
    const rss0 = settleRss();

    let next = 0;
    const t0 = Date.now();
    await Promise.all(slots.map(async (slot) => {
      while (next < TOTAL) {
        next++;
        await cycle(slot);
      }
    }));
    const ms = Date.now() - t0;

    const fd1 = await h.waitFor(() => (h.fdCount() <= fd0 ? h.fdCount() : 0), { timeoutMs: 3000 }).catch(() => h.fdCount());
    const rss1 = settleRss();
    const sorted = [...durations].sort((a, b) => a - b);
    const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    const summary =
      `${TOTAL} cycles, ${PARALLEL} at a time, in ${ms} ms (per cycle: p50 ${pct(0.5)} p95 ${pct(0.95)} max ${pct(1)} ms); ` +
      `fds ${fd0} -> ${fd1}; RSS ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MiB (${rss1 - rss0 >= 0 ? '+' : ''}${(rss1 - rss0).toFixed(1)}); ` +
      `${counter.n} log records`;
    t.diagnostic(summary);
    assert.equal(durations.length, TOTAL + 1);
    assert.equal(pgids.size, TOTAL + 1, 'a new process each cycle');
    assert.ok(fd1 <= fd0, `fd count ${fd0} -> ${fd1}:\n${h.fdTable().join('\n')}`);
    assert.deepEqual(h.liveMembersOfGroups(pgids), [], 'live processes of the daemons\' groups');
    await assertNothingLeft(0, dir);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f !== 'share'), [], 'no socket file left');
    assert.ok(rss1 - rss0 < 40, `RSS grew by ${(rss1 - rss0).toFixed(1)} MiB over ${TOTAL} cycles`);
    if (ms > 60000) t.diagnostic(`WARNING: the cycles took ${ms} ms (> 60 s)`);
  });
});

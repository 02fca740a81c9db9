'use strict';
/**
 * Property-based fuzz of the options (issue 7), with fast-check, against the REAL legacy
 * virtiofsd and the nydusd stand-in (test/helpers/nydusd-standin.js): arbitrary values for each
 * option — valid ones mixed with wrong types, BigInt, Symbol, NaN, throwing and changing
 * getters, sparse/mutating/getter-laden arrays, env shapes, signal names. For every run:
 * - the constructor throws only for a non-object, and then a typed error;
 * - start() and stop() never throw synchronously;
 * - start() either resolves to a pid (the daemon serves its socket) or rejects with a
 *   VirtiofsDaemonError carrying a string `code`;
 * - after a rejection no process of the run and no socket file is left, and no fd;
 * - after a resolution stop() ends the daemon (its group is empty, its sockets are gone,
 *   onQuit was called once).
 *
 * FUZZ_RUNS=<n> overrides the run counts, FUZZ_SEED=<n> replays a seed that fast-check
 * printed. The counts of each outcome are printed as diagnostics.
 *
 * Build first: npm run build
 * Run: node --test --test-concurrency=1 test/options-fuzz.test.js
 */
const nodeTest = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const fc = require('fast-check');
const pino = require('pino');

const { Virtiofsd, Nydusd, NydusClient, InvalidOptionError, buildVirtiofsdArgs } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { assertTyped, settle, sleep } = require('./helpers/util.js');

const STANDIN = path.join(__dirname, 'helpers', 'nydusd-standin.js');
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : undefined;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
/** node:test's test() with a timeout, so that a hang fails instead of stalling the run. */
function test(name, fn) {
  return nodeTest.test(name, { timeout: 180000 }, fn);
}

// Strings among the fuzzed values ('x', '100') are valid relative paths: run in a directory of
// our own, where the sockets they name are looked for (and never land in the repository).
const ROOT = path.resolve(__dirname, '..');
const CWD = fs.mkdtempSync(path.join(os.tmpdir(), 'fz-cwd-'));
process.chdir(CWD);
nodeTest.after(() => {
  process.chdir(ROOT);
  fs.rmSync(CWD, { recursive: true, force: true });
});

// A logger whose sink throws is one of the fuzzed values: its one warning per daemon is
// counted here instead of being printed (Node prints warnings through a 'warning' listener).
let loggerWarnings = 0;
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.code === 'ERR_LOGGER_FAILED') loggerWarnings++;
  else process.stderr.write(`${w.name}: ${w.message}\n`);
});

// ---------------------------------------------------------------------------------------------
// Values

/** Wrong types and ranges, shared by every option. */
const WEIRD = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 53,
  10n,
  -9n,
  '',
  'x',
  '100',
  'a\0b',
  [],
  [1],
  {},
  Symbol.for('fuzz'),
  () => 1,
  new Date(0),
  new Map(),
  Object.create(null),
];
const weird = fc.constantFrom(...WEIRD);

/** References to things of the run's world, resolved when the options are built. */
const ref = (name) => ({ ref: name });

/**
 * How a key is put on the options object: absent, a plain value, a getter that throws, or a
 * getter whose first answer is the value and every later one a BigInt.
 */
function prop(valid, { invalid = weird, absent = true } = {}) {
  // Weighted so that about a third of the runs get only valid options and start a daemon.
  const value = fc.oneof({ weight: 25, arbitrary: valid }, { weight: 1, arbitrary: invalid });
  const ways = [
    { weight: 30, arbitrary: value.map((v) => ({ how: 'plain', v })) },
    { weight: 1, arbitrary: fc.constant({ how: 'throws' }) },
    { weight: 2, arbitrary: value.map((v) => ({ how: 'changes', v })) },
  ];
  if (absent) ways.push({ weight: 6, arbitrary: fc.constant({ how: 'absent' }) });
  return fc.oneof(...ways);
}

const extraArgsInvalid = fc.oneof(
  weird,
  fc.constantFrom(ref('sparseArgs'), ref('mutatingArgs'), ref('getterArgs'), ref('proxyArgs'), '--thread-pool-size=1'),
  fc.array(fc.oneof(weird, fc.string()), { maxLength: 3 }),
);

const envValid = fc.constantFrom(ref('env'), {}, { FUZZ: '1' }, { FUZZ: undefined, PATH: '/usr/bin:/bin' });
const envInvalid = fc.oneof(
  weird,
  fc.constantFrom(
    { 'A=B': 'x' },
    { '': 'x' },
    { 'A\0': 'x' },
    { A: null },
    { A: 1 },
    { A: 10n },
    { A: Symbol('v') },
    { A: 'x\0y' },
    { [Symbol('k')]: 'v' },
    'ab',
    ['a', 'b'],
    ref('envGetter'),
  ),
);

const loggerValid = fc.constantFrom(ref('logger'), ref('throwingLogger'));
const loggerInvalid = fc.oneof(weird, fc.constantFrom(ref('notPino'), ref('childThrows'), ref('childNull')));

const signalValid = fc.constantFrom(
  'SIGTERM',
  'SIGKILL',
  'SIGINT',
  'SIGHUP',
  'SIGUSR1',
  'SIGWINCH',
  'SIGCONT',
  'SIGSTOP',
  'SIGIOT',
);
const signalInvalid = fc.oneof(weird, fc.constantFrom('SIGFOO', 'sigterm', 'TERM', 'SIGRTMIN', -9, 65, 15, 9));

// A surviving daemon is stopped like any other: the checks after stop() hold for both policies.
const lifetimeValid = fc.constantFrom('manager', 'survive');
const lifetimeInvalid = fc.oneof(weird, fc.constantFrom('Manager', 'detach', 'forever'));

/** A start timeout: long enough to start, or so short that the start times out (a typed error too). */
const startTimeout = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 5000, max: 15000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) },
);

const virtiofsdSpec = fc.record({
  top: fc.oneof(
    { weight: 30, arbitrary: fc.constant('object') },
    { weight: 1, arbitrary: fc.constantFrom(undefined, null, 'opts', 7, 10n) },
  ),
  path: prop(fc.constant(ref('virtiofsd')), { invalid: fc.oneof(weird, fc.constant(ref('missing'))), absent: false }),
  socketPath: prop(fc.constant(ref('sock')), { invalid: fc.oneof(weird, fc.constant(ref('longSock'))), absent: false }),
  sourcePath: prop(fc.constant(ref('src')), { invalid: fc.oneof(weird, fc.constant(ref('missing'))), absent: false }),
  cache: prop(fc.constantFrom('auto', 'always', 'never'), {
    invalid: fc.oneof(weird, fc.constantFrom('metadata', 'none', 'AUTO')),
  }),
  extraArgs: prop(fc.constantFrom([], [], ['--thread-pool-size=1'], ['--bogus-flag']), { invalid: extraArgsInvalid }),
  dialect: prop(fc.constantFrom('auto', 'legacy'), { invalid: fc.oneof(weird, fc.constantFrom('rust', 'c')) }),
  syslog: prop(fc.constant(false)),
  debug: prop(fc.boolean()),
  logger: prop(loggerValid, { invalid: loggerInvalid, absent: false }),
  startTimeoutMs: prop(startTimeout),
  stopSignal: prop(signalValid, { invalid: signalInvalid }),
  stopTimeoutMs: prop(fc.integer({ min: 1, max: 300 })),
  env: prop(envValid, { invalid: envInvalid }),
  lifetime: prop(lifetimeValid, { invalid: lifetimeInvalid }),
});

const nydusdSpec = fc.record({
  top: fc.oneof(
    { weight: 30, arbitrary: fc.constant('object') },
    { weight: 1, arbitrary: fc.constantFrom(undefined, null, 'opts', 7, 10n) },
  ),
  path: prop(fc.constant(ref('standin')), { invalid: fc.oneof(weird, fc.constant(ref('missing'))), absent: false }),
  sockPath: prop(fc.constant(ref('sock')), {
    invalid: fc.oneof(weird, fc.constantFrom(ref('longSock'), ref('apiSock'))),
    absent: false,
  }),
  apiSockPath: prop(fc.constant(ref('apiSock')), {
    invalid: fc.oneof(weird, fc.constantFrom(ref('longSock'), ref('sock'))),
    absent: false,
  }),
  sourcePath: prop(fc.constant(ref('src')), { invalid: fc.oneof(weird, fc.constant(ref('missing'))), absent: false }),
  extraArgs: prop(fc.constantFrom([], [], ['--id', 'fuzz'], ['--bogus-flag']), { invalid: extraArgsInvalid }),
  debug: prop(fc.boolean()),
  logger: prop(loggerValid, { invalid: loggerInvalid, absent: false }),
  startTimeoutMs: prop(startTimeout),
  probeTimeoutMs: prop(fc.integer({ min: 200, max: 2000 })),
  apiTimeoutMs: prop(
    fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 2000, max: 30000 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
    ),
  ),
  stopTimeoutMs: prop(fc.integer({ min: 1, max: 1000 })),
  env: prop(envValid, { invalid: envInvalid }),
  lifetime: prop(lifetimeValid, { invalid: lifetimeInvalid }),
});

// ---------------------------------------------------------------------------------------------
// Building the options of one run

/** The things a run's references point at, in a fresh short directory. */
function runWorld(daemonPath) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fz-'));
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const noop = () => {};
  const levels = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop };
  const sparse = ['--thread-pool-size=1'];
  sparse[2] = '--x';
  const mutating = ['--thread-pool-size=1'];
  Object.defineProperty(mutating, 0, {
    enumerable: true,
    get() {
      mutating.push(Symbol('grown'));
      return '--thread-pool-size=1';
    },
  });
  const getterArgs = [];
  Object.defineProperty(getterArgs, 0, {
    enumerable: true,
    get() {
      throw new Error('index getter');
    },
  });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const envGetter = Object.defineProperty({}, 'A', {
    enumerable: true,
    get() {
      throw new Error('env getter');
    },
  });
  const refs = {
    virtiofsd: daemonPath,
    standin: daemonPath,
    sock: path.join(dir, 'v.sock'),
    apiSock: path.join(dir, 'a.sock'),
    longSock: path.join(dir, 'x'.repeat(108 - dir.length)),
    src,
    missing: path.join(dir, 'missing'),
    sparseArgs: sparse,
    mutatingArgs: mutating,
    getterArgs,
    proxyArgs: new Proxy(['--thread-pool-size=1'], {
      get(target, key) {
        if (key === 'length') return 2 ** 40;
        return Reflect.get(target, key);
      },
    }),
    env,
    envGetter,
    logger: pino({ level: 'debug', base: null }, { write() {} }),
    throwingLogger: pino(
      { level: 'debug', base: null },
      {
        write() {
          throw new Error('sink full');
        },
      },
    ),
    notPino: { info: noop },
    childThrows: {
      ...levels,
      child() {
        throw new Error('no children');
      },
    },
    childNull: { ...levels, child: () => null },
  };
  return { dir, refs };
}

/** The options object of a spec: each key put on it as the spec says. */
function buildOptions(spec, refs) {
  const resolve = (v) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, 'ref') && Object.keys(v).length === 1
      ? refs[v.ref]
      : v;
  if (spec.top !== 'object') return spec.top;
  const o = {};
  for (const [key, p] of Object.entries(spec)) {
    if (key === 'top' || p.how === 'absent') continue;
    if (p.how === 'plain') {
      o[key] = resolve(p.v);
    } else if (p.how === 'throws') {
      Object.defineProperty(o, key, {
        enumerable: true,
        get: () => {
          throw new Error(`getter ${key}`);
        },
      });
    } else {
      let reads = 0;
      const first = resolve(p.v);
      Object.defineProperty(o, key, { enumerable: true, get: () => (reads++ === 0 ? first : 10n) });
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// The property

/** Processes whose command line mentions `needle` (the run's directory). */
function processesMentioning(needle) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const st = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
      if (cmd.includes(needle) && state !== 'Z') out.push(`${name}: ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The socket files in the run's directory and in our working directory (relative paths). */
function socketsIn(dir) {
  return [dir, CWD].flatMap((d) =>
    fs
      .readdirSync(d)
      .map((n) => path.join(d, n))
      .filter((p) => {
        try {
          return fs.lstatSync(p).isSocket();
        } catch {
          return false;
        }
      }),
  );
}

/** Until the fd count is back at fd0 (a closed socket's fd is released on the loop), at most 1 s. */
async function fdsBackTo(table0) {
  await h.waitFor(() => h.fdCount() <= table0.length, { timeoutMs: 1000 }).catch(() => {});
  const now = h.fdTable();
  assert.deepEqual(
    now.filter((x) => !table0.includes(x)),
    [],
    `fds left; before: ${JSON.stringify(table0)}`,
  );
}

/** One run: construct, start, check, stop, check. Returns the outcome's name for the tally. */
async function run(Ctor, spec, daemonPath) {
  const { dir, refs } = runWorld(daemonPath);
  const fd0 = h.fdTable();
  try {
    const options = buildOptions(spec, refs);
    let d;
    try {
      d = new Ctor(options);
    } catch (err) {
      assertTyped(err, 'constructor');
      assert.ok(err instanceof InvalidOptionError);
      assert.notEqual(spec.top, 'object', `the constructor threw for an object: ${err.message}`);
      return 'constructor: ERR_INVALID_OPTION';
    }
    assert.equal(spec.top, 'object', `the constructor accepted ${String(spec.top)}`);
    const quits = [];
    const r = await settle(() => d.start((x) => quits.push(x)), 'start()');
    if (r.error) {
      assertTyped(r.error, 'start()');
      assert.equal(d.pid, 0);
      assert.deepEqual(processesMentioning(dir), [], `a process of the run was left after: ${r.error.message}`);
      assert.deepEqual(h.liveChildren(), [], 'a child was left');
      assert.deepEqual(socketsIn(dir), [], `a socket file was left after: ${r.error.message}`);
      const s = await settle(() => d.stop(), 'stop() after a failed start');
      assert.equal(s.error, undefined, `stop() after a failed start: ${s.error?.message}`);
      await sleep(5);
      assert.deepEqual(quits, [], 'onQuit after a failed start');
      await fdsBackTo(fd0);
      return `start: ${r.error.code}${r.error.option ? ` (${r.error.option.replace(/\[\d+\]$|\..*$/, '')})` : ''}`;
    }
    const pid = r.value;
    assert.ok(Number.isInteger(pid) && pid > 0, `pid ${pid}`);
    assert.equal(d.pid, pid);
    assert.ok(socketsIn(dir).length > 0, 'no socket while running');
    const s = await settle(() => d.stop(), 'stop()');
    assert.equal(s.error, undefined, `stop(): ${s.error?.message}`);
    assert.equal(d.pid, 0);
    assert.equal(quits.length, 1, 'onQuit once');
    assert.equal(quits[0].requested, true);
    assert.deepEqual(h.liveGroupMembers(pid), [], 'the group outlived stop()');
    assert.deepEqual(processesMentioning(dir), [], 'a process of the run outlived stop()');
    assert.deepEqual(socketsIn(dir), [], 'a socket outlived stop()');
    await fdsBackTo(fd0);
    return 'started and stopped';
  } finally {
    await h.waitFor(() => h.zombieChildren().length === 0, { timeoutMs: 2000 }).catch(() => {});
    for (const p of processesMentioning(dir)) process.kill(Number(p.split(':')[0]), 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    for (const n of fs.readdirSync(CWD)) fs.rmSync(path.join(CWD, n), { recursive: true, force: true });
  }
}

async function fuzz(t, Ctor, spec, daemonPath, numRuns) {
  const tally = new Map();
  const warnings0 = loggerWarnings;
  const t0 = Date.now();
  await fc.assert(
    fc.asyncProperty(spec, async (s) => {
      const outcome = await run(Ctor, s, daemonPath);
      tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
    }),
    { numRuns: RUNS ?? numRuns, seed: SEED, endOnFailure: true, includeErrorInReport: true },
  );
  assert.deepEqual(h.zombieChildren(), []);
  const total = [...tally.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`${total} runs in ${Date.now() - t0} ms; logger warnings ${loggerWarnings - warnings0}`);
  for (const [k, n] of [...tally].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${String(n).padStart(4)}  ${k}`);
  // The fuzz must reach both sides, or it proves little.
  assert.ok(
    (tally.get('started and stopped') ?? 0) >= total / 10,
    `too few successful runs: ${JSON.stringify([...tally])}`,
  );
  assert.ok(total - (tally.get('started and stopped') ?? 0) >= total / 10, 'too few refused runs');
}

nodeTest.describe('options fuzz (fast-check)', () => {
  test('Virtiofsd against the real legacy virtiofsd', async (t) => {
    await fuzz(t, Virtiofsd, virtiofsdSpec, h.virtiofsdPath('legacy'), 200);
  });

  test('Nydusd against the stand-in', async (t) => {
    await fuzz(t, Nydusd, nydusdSpec, STANDIN, 200);
  });

  test('NydusClient constructor and mount(): a client or a typed error, never anything else', async (t) => {
    const sockArb = fc.oneof(fc.constant('/tmp/fz-none.sock'), weird, fc.string({ maxLength: 120 }));
    const optsArb = fc.oneof(
      fc.constant(undefined),
      weird,
      fc.record(
        {
          timeoutMs: fc.oneof(weird, fc.integer()),
          keepAlive: fc.oneof(weird, fc.boolean()),
          maxResponseBytes: fc.oneof(weird, fc.integer()),
        },
        { requiredKeys: [] },
      ),
    );
    const cmdArb = fc.oneof(
      weird,
      fc.record(
        {
          fs_type: fc.oneof(weird, fc.constant('rafs')),
          source: fc.oneof(weird, fc.string()),
          config: fc.oneof(weird, fc.string()),
          prefetch_files: fc.oneof(weird, fc.array(fc.oneof(weird, fc.string()), { maxLength: 3 })),
        },
        { requiredKeys: [] },
      ),
    );
    let made = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(sockArb, optsArb, fc.oneof(weird, fc.string()), cmdArb, async (sock, opts, mountpoint, cmd) => {
        let client;
        try {
          client = new NydusClient(sock, opts);
        } catch (err) {
          assertTyped(err, 'new NydusClient');
          refused++;
          return;
        }
        made++;
        try {
          // Nothing listens at the path: a typed error either way, never a synchronous throw.
          const m = await settle(() => client.mount(mountpoint, cmd), 'mount()');
          assertTyped(m.error, 'mount()');
          const u = await settle(() => client.umount(mountpoint), 'umount()');
          assertTyped(u.error, 'umount()');
        } finally {
          client.close();
        }
      }),
      { numRuns: RUNS ?? 500, seed: SEED, includeErrorInReport: true },
    );
    t.diagnostic(`NydusClient: ${made} clients made, ${refused} refused`);
    assert.ok(made > 0 && refused > 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Tenant-override spellings (issue 16): whatever the library or the operator's typed options
// set, no spelling of that setting among a tenant's extra arguments gets past 'known' or
// 'safe' — in the forms each daemon really honours (see the table in src/extra-args.ts).

const GUARD_MAP = ':prefix:all::user.virtiofs.::bad:all:::';

/**
 * Per dialect, per daemon setting: the options that set it (typed ones the operator may set;
 * `{}` when the library always does) and the spellings a tenant could re-set it with — `o`:
 * `-o` options; `flags`: argv words (a `--flag=value` is also tried as `--flag value`).
 */
const OVERRIDE_SETTINGS = {
  legacy: {
    xattr: {
      typed: [{ xattr: false }, { xattr: true }, { xattrmap: GUARD_MAP }, { posixAcl: true }, { securityLabel: true }],
      o: ['xattr', 'no_xattr', 'xattrmap=:ok:all:::'],
    },
    xattrmap: { typed: [{ xattrmap: GUARD_MAP }], o: ['xattrmap=:ok:all:::', 'xattrmap=:map::trusted.:'] },
    posix_acl: { typed: [{ posixAcl: true }, { posixAcl: false }], o: ['posix_acl', 'no_posix_acl'] },
    security_label: { typed: [{ securityLabel: true }, { securityLabel: false }], o: ['security_label'] },
    sandbox: { typed: [{ sandbox: 'chroot' }, { sandbox: 'namespace' }], o: ['sandbox=namespace', 'sandbox=chroot'] },
    log_level: { typed: [{ logLevel: 'error' }, { logLevel: 'info' }, { debug: true }], o: ['log_level=debug'] },
    modcaps: { typed: [{ modcaps: '-mknod' }], o: ['modcaps=+sys_admin'] },
    thread_pool_size: { typed: [{ threadPoolSize: 1 }], flags: [['--thread-pool-size=64']] },
    rlimit_nofile: { typed: [{ rlimitNofile: 4096 }], flags: [['--rlimit-nofile=0']] },
    timeout: { typed: [{ timeout: 5 }], o: ['timeout=0'] },
    max_idle_threads: { typed: [{ maxIdleThreads: 2 }], o: ['max_idle_threads=64'] },
    flock: { typed: [{ flock: false }, { flock: true }], o: ['flock', 'no_flock'] },
    writeback: { typed: [{ writeback: false }], o: ['writeback', 'no_writeback'] },
    readdirplus: { typed: [{ readdirplus: false }], o: ['readdirplus'] },
    allow_direct_io: { typed: [{ allowDirectIo: false }], o: ['allow_direct_io'] },
    killpriv_v2: { typed: [{ killprivV2: false }, { killprivV2: true }], o: ['killpriv_v2', 'no_killpriv_v2'] },
    announce_submounts: { typed: [{ announceSubmounts: true }], o: ['announce_submounts'] },
    // What the library always passes.
    source: { typed: [{}], o: ['source=/', 'source=/etc'] },
    cache: { typed: [{}, { cache: 'always' }], o: ['cache=always', 'cache=none'] },
    posix_lock: { typed: [{}, { posixLock: true }], o: ['posix_lock', 'no_posix_lock'] },
    foreground: { typed: [{}, { debug: true }], o: ['debug'], flags: [['-f'], ['-d']] },
    socket: { typed: [{}], flags: [['--fd=4'], ['--socket-path=/tmp/fz-evil.sock'], ['--syslog']] },
  },
  rust: {
    xattr: {
      typed: [{ xattr: false }, { xattr: true }, { xattrmap: GUARD_MAP }, { posixAcl: true }, { securityLabel: true }],
      o: ['xattr', 'no_xattr', 'posix_acl', 'security_label', 'xattrmap=:ok:all:::'],
      flags: [['--xattr'], ['--posix-acl'], ['--security-label'], ['--xattrmap=:ok:all:::']],
    },
    xattrmap: { typed: [{ xattrmap: GUARD_MAP }], o: ['xattrmap=:ok:all:::'], flags: [['--xattrmap=:ok:all:::']] },
    sandbox: {
      typed: [{ sandbox: 'chroot' }, { sandbox: 'namespace' }, { sandbox: 'none' }],
      o: ['sandbox=namespace', 'sandbox=chroot'],
      flags: [['--sandbox=none'], ['--sandbox=chroot']],
    },
    seccomp: { typed: [{ seccomp: 'kill' }], flags: [['--seccomp=none'], ['--seccomp=log']] },
    log_level: {
      typed: [{ logLevel: 'error' }, { logLevel: 'warn' }, { debug: true }],
      o: ['loglevel=debug', 'loglevel=info'],
      flags: [['-d'], ['--log-level=debug'], ['--log-level=off']],
    },
    inode_file_handles: { typed: [{ inodeFileHandles: 'never' }], flags: [['--inode-file-handles=prefer']] },
    modcaps: { typed: [{ modcaps: '-mknod' }], o: ['modcaps=+sys_admin'], flags: [['--modcaps=+sys_admin']] },
    thread_pool_size: { typed: [{ threadPoolSize: 1 }], flags: [['--thread-pool-size=64']] },
    announce_submounts: {
      typed: [{ announceSubmounts: false }, { announceSubmounts: true }],
      o: ['announce_submounts'],
      flags: [['--announce-submounts'], ['--no-announce-submounts']],
    },
    readdirplus: {
      typed: [{ readdirplus: false }],
      o: ['readdirplus', 'no_readdirplus'],
      flags: [['--no-readdirplus']],
    },
    killpriv_v2: {
      typed: [{ killprivV2: true }, { killprivV2: false }],
      o: ['killpriv_v2', 'no_killpriv_v2'],
      flags: [['--killpriv-v2'], ['--no-killpriv-v2']],
    },
    writeback: { typed: [{ writeback: false }], o: ['writeback', 'no_writeback'], flags: [['--writeback']] },
    allow_direct_io: { typed: [{ allowDirectIo: false }], o: ['allow_direct_io'], flags: [['--allow-direct-io']] },
    preserve_noatime: { typed: [{ preserveNoatime: false }], flags: [['--preserve-noatime']] },
    // What the library always passes.
    source: { typed: [{}], o: ['source=/'], flags: [['--shared-dir=/']] },
    cache: { typed: [{}, { cache: 'never' }], o: ['cache=always'], flags: [['--cache=always']] },
    socket: { typed: [{}], flags: [['--fd=4'], ['--socket-path=/tmp/fz-evil.sock'], ['--socket=/x'], ['--syslog']] },
  },
};

/** Arguments both 'known' and 'safe' let through, with the setting each writes (left out when it is the case's). */
const BENIGN = {
  legacy: [
    [['-o', 'no_writeback'], 'writeback'],
    [['--rlimit-nofile=8192'], 'rlimit_nofile'],
    [['-o', 'announce_submounts'], 'announce_submounts'],
  ],
  rust: [
    [['--tag=fs0'], 'tag'],
    [['--rlimit-nofile', '8192'], 'rlimit_nofile'],
    [['--readonly'], 'readonly'],
    [['--migration-mode', 'find-paths'], 'migration'],
  ],
};
/** `-o` options that pass 'known' (beside the override in one comma group), with their setting. */
const BENIGN_O = {
  legacy: [
    ['no_writeback', 'writeback'],
    ['announce_submounts', 'announce_submounts'],
  ],
  rust: [
    ['no_writeback', 'writeback'],
    ['no_posix_lock', 'none'],
  ],
};

/** fuse_opt unescapes `\c` to c and `\ooo` (octal) to a byte: a name a tenant may hide in both ways. */
function escapeOne(text, at, octal) {
  const c = text[at];
  const esc = octal ? `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}` : `\\${c}`;
  return text.slice(0, at) + esc + text.slice(at + 1);
}

/**
 * One tenant override: { dialect, typed, setting, extra, index } — `extra` re-sets `setting`
 * (which `typed` or the library sets), `index` is where a refusal must point.
 */
const overrideCase = fc
  .constantFrom('legacy', 'rust')
  .chain((dialect) =>
    fc.constantFrom(...Object.keys(OVERRIDE_SETTINGS[dialect])).map((setting) => ({ dialect, setting })),
  )
  .chain(({ dialect, setting }) => {
    const s = OVERRIDE_SETTINGS[dialect][setting];
    const benign = BENIGN[dialect].filter(([, k]) => k !== setting).map(([a]) => a);
    const benignO = BENIGN_O[dialect].filter(([, k]) => k !== setting).map(([a]) => a);
    const forms = [];
    if (s.o) {
      forms.push(
        fc.record({
          opt: fc.constantFrom(...s.o),
          how: fc.constantFrom('plain', 'escaped', 'octal', 'groupBefore', 'groupAfter', 'attached', 'attachedEq'),
          at: fc.nat(),
          other: fc.constantFrom(...benignO),
        }),
      );
    }
    if (s.flags) forms.push(fc.record({ flag: fc.constantFrom(...s.flags), split: fc.boolean() }));
    return fc.record({
      dialect: fc.constant(dialect),
      setting: fc.constant(setting),
      typed: fc.constantFrom(...s.typed),
      form: fc.oneof(...forms),
      before: fc.array(fc.constantFrom(...benign), { maxLength: 2 }),
      after: fc.array(fc.constantFrom(...benign), { maxLength: 2 }),
    });
  })
  .map(({ dialect, setting, typed, form, before, after }) => {
    let tokens;
    let at;
    let documented = true;
    if (form.opt !== undefined) {
      let opt = form.opt;
      const name = opt.split('=')[0];
      if (dialect === 'legacy' && (form.how === 'escaped' || form.how === 'octal')) {
        opt = escapeOne(opt, form.at % name.length, form.how === 'octal');
      }
      if (form.how === 'groupBefore') opt = `${form.other},${opt}`;
      if (form.how === 'groupAfter') opt = `${opt},${form.other}`;
      if (form.how === 'attached' || form.how === 'attachedEq') {
        tokens = [`-o${form.how === 'attachedEq' ? '=' : ''}${opt}`];
        at = 0;
        documented = false;
      } else {
        tokens = ['-o', opt];
        at = 1;
      }
    } else {
      const [word] = form.flag;
      const eq = word.indexOf('=');
      // clap takes `--flag value` too, except for --inode-file-handles (require_equals).
      const splits = dialect === 'rust' && eq > 0 && !word.startsWith('--inode-file-handles=');
      tokens = form.split && splits ? [word.slice(0, eq), word.slice(eq + 1)] : [...form.flag];
      at = 0;
    }
    const pre = before.flat();
    return { dialect, setting, typed, extra: [...pre, ...tokens, ...after.flat()], index: pre.length + at, documented };
  });

nodeTest.describe('tenant-override spellings (fast-check)', () => {
  test('every override spelling is refused under known and safe at its index; verbatim appends it as it is', () => {
    const seen = new Map();
    fc.assert(
      fc.property(overrideCase, (c) => {
        const input = { dialect: c.dialect, sourcePath: '/srv/share', ...c.typed, extraArgs: c.extra };
        for (const policy of ['known', 'safe']) {
          const what = `${policy} ${JSON.stringify(c)}`;
          assert.throws(
            () => buildVirtiofsdArgs({ ...input, extraArgsPolicy: policy }),
            (err) => {
              assert.ok(err instanceof InvalidOptionError, `${what}: ${err}`);
              assert.equal(err.option, `extraArgs[${c.index}]`, `${what}: ${err.message}`);
              if (policy === 'known' && c.documented) {
                assert.match(err.message, /typed option \w+ \(the operator's\)|is set by this library/, what);
              }
              return true;
            },
          );
        }
        const argv = buildVirtiofsdArgs(input);
        assert.deepEqual(argv.slice(argv.length - c.extra.length), c.extra);
        const k = `${c.dialect} ${c.setting}`;
        seen.set(k, (seen.get(k) ?? 0) + 1);
      }),
      { numRuns: RUNS ?? 2000, seed: SEED, includeErrorInReport: true },
    );
    // Every setting of both tables was tried.
    for (const dialect of ['legacy', 'rust']) {
      for (const setting of Object.keys(OVERRIDE_SETTINGS[dialect])) {
        assert.ok(seen.has(`${dialect} ${setting}`) || RUNS !== undefined, `${dialect} ${setting} never generated`);
      }
    }
  });

  test('arbitrary extra arguments under known/safe: argv or a typed error naming extraArgs[i], never anything else', () => {
    const word = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom('-o', '--', '-', '-d', '-f', '--xattr', '--shared-dir', '--tag', '--log-level', 'xattr', '='),
      fc.constantFrom(...Object.values(OVERRIDE_SETTINGS.legacy).flatMap((s) => s.o ?? [])),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('legacy', 'rust'),
        fc.constantFrom('known', 'safe'),
        fc.array(word, { maxLength: 6 }),
        (dialect, policy, extra) => {
          try {
            const argv = buildVirtiofsdArgs({ dialect, sourcePath: '/s', extraArgs: extra, extraArgsPolicy: policy });
            assert.deepEqual(argv.slice(argv.length - extra.length), extra);
          } catch (err) {
            assert.ok(err instanceof InvalidOptionError, String(err));
            assert.match(err.option, /^extraArgs\[\d+\]$/);
            assert.ok(Number(/\d+/.exec(err.option)[0]) < extra.length, err.message);
          }
        },
      ),
      { numRuns: RUNS ?? 2000, seed: SEED, includeErrorInReport: true },
    );
  });

  for (const dialect of ['legacy', 'rust']) {
    test(`override spellings against the real ${dialect} virtiofsd: refused, nothing created, nothing left`, async (t) => {
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(
          overrideCase.filter((c) => c.dialect === dialect),
          fc.constantFrom('known', 'safe'),
          async (c, policy) => {
            const { dir, refs } = runWorld(h.virtiofsdPath(dialect));
            const fd0 = h.fdTable();
            try {
              const d = new Virtiofsd({
                path: refs.virtiofsd,
                dialect,
                socketPath: refs.sock,
                sourcePath: refs.src,
                logger: refs.logger,
                ...c.typed,
                extraArgs: c.extra,
                extraArgsPolicy: policy,
              });
              const r = await settle(() => d.start(), 'start()');
              if (!r.error) await d.stop();
              assert.ok(
                r.error instanceof InvalidOptionError,
                `${policy} ${JSON.stringify(c)}: ${r.error ?? 'started'}`,
              );
              assert.equal(r.error.option, `extraArgs[${c.index}]`, r.error.message);
              assert.equal(d.pid, 0);
              assert.deepEqual(socketsIn(dir), []);
              assert.deepEqual(processesMentioning(dir), []);
              await fdsBackTo(fd0);
              refused++;
            } finally {
              fs.rmSync(dir, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: RUNS ?? 60, seed: SEED, endOnFailure: true, includeErrorInReport: true },
      );
      t.diagnostic(`${refused} override starts refused before anything was created`);
    });
  }
});

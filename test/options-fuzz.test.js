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

const { Virtiofsd, Nydusd, NydusClient, InvalidOptionError } = require('../dist/index.js');
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

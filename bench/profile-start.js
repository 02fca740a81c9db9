'use strict';
/**
 * `node bench/profile-start.js`: where a start and a stop spend the manager's CPU. Runs a loop of
 * `Virtiofsd.start()` → ready → `stop()` (the raw stand-in of bench/density.js, ready at once,
 * so that the daemon's own start-up is not in the way; pino at info into /dev/null, explicit
 * dialect, as `density.js one` does) in a fresh process, profiled with V8's sampling CPU
 * profiler (what `node --cpu-prof` runs, started through node:inspector around the measured
 * loop only, so that module loading and the warm-up stay out), then reads the .cpuprofile and
 * prints the frames with the most self time, per start/stop cycle.
 *
 * Use it before and after a change to the start or stop path: the table says which frames grew
 * or went. Knobs: PROFILE_CYCLES (default 300), PROFILE_INTERVAL_US (default 50),
 * PROFILE_TOP (default 30), PROFILE_DAEMON (standin | legacy | rust, default standin),
 * PROFILE_STORM=N (each cycle starts N daemons at once, then stops them all: the boot storm's
 * profile; per-cycle figures are then divided by N, i.e. per daemon; default 3 cycles),
 * PROFILE_KEEP=dir (keep the .cpuprofile there, to open in Chrome DevTools), PROFILE_ROOT (the
 * checkout to profile, default this one: built, with its dist/ and addon).
 *
 * A measurement tool: nothing is asserted. Markdown on stdout, progress on stderr.
 */
const cp = require('node:child_process');
const inspector = require('node:inspector');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const STORM = Number(process.env.PROFILE_STORM || 0);
const CYCLES = Number(process.env.PROFILE_CYCLES || (STORM > 0 ? 3 : 300));
const INTERVAL_US = Number(process.env.PROFILE_INTERVAL_US || 50);
const TOP = Number(process.env.PROFILE_TOP || 30);
const DAEMON = process.env.PROFILE_DAEMON || 'standin';
const ROOT = path.resolve(process.env.PROFILE_ROOT || path.join(__dirname, '..'));

/** The child: warm up, then the measured loop. */
async function loop() {
  const c = require('./common.js');
  const pino = require(require.resolve('pino', { paths: [c.root] }));
  const { Virtiofsd } = c.lib(ROOT).virtiofsd;
  const dir = fs.mkdtempSync(path.join(c.tmpBase(), 'vfd-prof-'));
  const bin = DAEMON === 'standin' ? c.rawReadyStandin(dir) : c.virtiofsdPath(DAEMON);
  const dialect = DAEMON === 'legacy' ? 'legacy' : 'rust';
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const make = (i) =>
    new Virtiofsd({
      path: bin,
      dialect,
      socketPath: path.join(dir, `p${i}.sock`),
      sourcePath: dir,
      logger,
      startTimeoutMs: 60000,
    });
  const once = async (i) => {
    if (STORM > 0) {
      // A storm: STORM daemons started at once, then all stopped at once.
      const ds = Array.from({ length: STORM }, (_, k) => make(`${i}-${k}`));
      await Promise.all(ds.map((d) => d.start()));
      await Promise.all(ds.map((d) => d.stop()));
      return;
    }
    const d = make(i);
    await d.start();
    await d.stop();
  };
  for (let i = 0; i < (STORM > 0 ? 1 : 20); i++) await once(`w${i}`); // warm-up: the optimizing compiler, the caches
  const session = new inspector.Session();
  session.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: INTERVAL_US });
  await post('Profiler.start');
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < CYCLES; i++) await once(i);
  const cpu = process.cpuUsage(cpu0);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1e3;
  const { profile } = await post('Profiler.stop');
  session.disconnect();
  // The sampling profiler charges a native frame with wall time, syscalls slowed by its signal
  // included; a second, unprofiled loop times each addon call with the clock instead.
  const native = c.lib(ROOT).native;
  const calls = {};
  for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(native))) {
    // Functions of its own only: re-exports are getters, classes are not calls.
    const fn = desc.value;
    if (typeof fn !== 'function' || !desc.writable || /^[A-Z]/.test(name)) continue;
    const acc = (calls[name] = { us: 0, n: 0 });
    native[name] = function timed(...args) {
      const t0 = process.hrtime.bigint();
      try {
        return fn.apply(this, args);
      } finally {
        acc.us += Number(process.hrtime.bigint() - t0) / 1e3;
        acc.n++;
      }
    };
  }
  for (let i = 0; i < CYCLES; i++) await once(`t${i}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.writeFileSync(process.argv[3], JSON.stringify(profile));
  process.stdout.write(JSON.stringify({ wallUs, cpuUs: cpu.user + cpu.system, calls }));
}

const sourceLines = new Map();

/**
 * The addon method a JS frame calls (`a.listenUnix(` on its line of dist/process/native.js): V8 gives
 * every Node-API callback of the addon the same name, so the caller's line tells them apart.
 */
function addonMethod(frame) {
  if (!frame.url.endsWith('/dist/process/native.js')) return undefined;
  const file = frame.url.replace(/^file:\/\//, '');
  if (!sourceLines.has(file)) sourceLines.set(file, fs.readFileSync(file, 'utf8').split('\n'));
  const m = /\b(?:a|raw)\.(\w+)\(/.exec(sourceLines.get(file)[frame.lineNumber] ?? '');
  return m ? `addon.${m[1]}` : undefined;
}

/** Self time per frame (function, file, line) from a .cpuprofile, in µs. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const k of n.children || []) parent.set(k, n);
  const where = (f) => (f.url ? `${path.relative(ROOT, f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '');
  const self = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    // The time until the next sample is this one's (the last sample's is unknown: skipped).
    const dt = i + 1 < deltas.length ? deltas[i + 1] : 0;
    const f = node.callFrame;
    let key = `${f.functionName || '(anonymous)'}\t${where(f)}`;
    // A C++ callback (the addon's methods, fs bindings) has no script and, for the addon, not
    // even its own name: V8 labels them all alike. Its JavaScript caller says which one it was.
    if (!f.url && !f.functionName.startsWith('(') && parent.has(node.id)) {
      const up = parent.get(node.id).callFrame;
      key = `native ${addonMethod(up) ?? f.functionName}, called by ${up.functionName || '(anonymous)'}\t${where(up)}`;
    }
    self.set(key, (self.get(key) || 0) + dt);
  }
  return self;
}

async function main() {
  if (process.argv[2] === 'child') return loop();
  const dir = process.env.PROFILE_KEEP || fs.mkdtempSync(path.join(os.tmpdir(), 'vfd-cpuprof-'));
  fs.mkdirSync(dir, { recursive: true });
  process.stderr.write(`[profile] ${CYCLES} start/stop cycles of the ${DAEMON}, sampled every ${INTERVAL_US} µs\n`);
  const file = path.join(dir, `start-stop-${process.pid}.cpuprofile`);
  const out = cp.execFileSync(process.execPath, [__filename, 'child', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  });
  const run = JSON.parse(out.toString());
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const self = selfTimes(profile);
  if (!process.env.PROFILE_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = self.get('(idle)\t') || 0;
  const busy = total - idle;
  const cycles = CYCLES * Math.max(STORM, 1);
  const rows = [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  const lines = [
    `${new Date().toISOString()} · Node ${process.version} · ${os.cpus()[0].model} ×${os.cpus().length} · load ${require('./common.js').loadAverages()}`,
    '',
    `${CYCLES} ${STORM > 0 ? `storms of ${STORM} starts then ${STORM} stops` : 'start → ready → stop cycles'} of the ` +
      `${DAEMON}: ${(run.wallUs / cycles).toFixed(0)} µs wall and ${(run.cpuUs / cycles).toFixed(0)} µs of manager CPU ` +
      `per daemon (process.cpuUsage, all threads). Profile (main thread): ${(busy / cycles).toFixed(0)} µs busy per daemon.`,
    '',
    '| self µs / daemon | % of busy | function | where |',
    '| ---: | ---: | --- | --- |',
  ];
  for (const [key, us] of rows.slice(0, TOP)) {
    const [fn, where] = key.split('\t');
    lines.push(`| ${(us / cycles).toFixed(1)} | ${((100 * us) / busy).toFixed(1)} | ${fn} | ${where} |`);
  }
  lines.push(
    '',
    'The calls into src/native.ts (the addon behind it), timed with the clock in a second loop without the profiler:',
    '',
    '| call | per daemon | µs per daemon | µs per call |',
    '| --- | ---: | ---: | ---: |',
  );
  for (const [name, k] of Object.entries(run.calls)
    .filter(([, k]) => k.n > 0)
    .sort((a, b) => b[1].us - a[1].us)) {
    lines.push(
      `| ${name} | ${(k.n / cycles).toFixed(2)} | ${(k.us / cycles).toFixed(1)} | ${(k.us / k.n).toFixed(1)} |`,
    );
  }
  console.log(lines.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

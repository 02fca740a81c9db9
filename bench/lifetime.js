'use strict';
/**
 * `node bench/lifetime.js`: the README's lifetime figures, per daemon (both virtiofsd dialects
 * and nydusd through its stand-in, or $NYDUSD):
 *
 *   gone after SIGKILL   ms from the manager's SIGKILL until no process of the daemon's group
 *                        is alive (lifetime 'manager', serving a front-end; polled every 2 ms)
 *   adopt                ms for Virtiofsd.adopt()/Nydusd.adopt() of a surviving daemon whose
 *                        manager was SIGKILLed (pidfd_open, verification, lock, pidfd_getfd)
 *   lines delivered      lines logged while no manager was attached that the new manager
 *                        received (legacy virtiofsd with -d: 2 per GET_FEATURES; BENCH_REQUESTS
 *                        requests, default 8000, more than the 1 MiB pipe holds)
 *
 * A measurement tool: nothing is asserted. Median (min-max) of BENCH_RUNS runs (default 5).
 * Markdown on stdout.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const pino = require('pino');
const { Nydusd, Virtiofsd } = require('../dist/index.js');
const { connectVhostUser } = require('../test/helpers/vhost-user.js');
const { KINDS, startManager, msUntilGroupsGone, killGroups, connectFrontEnds } = require('../test/helpers/lifetime.js');

const RUNS = Number(process.env.BENCH_RUNS || 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS || 8000);

/** A stand-in for node:test's context: cleanups run after each run. */
function context() {
  const cleanups = [];
  return {
    after: (fn) => cleanups.push(fn),
    done: async () => {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}

function spec(t, k, extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlb-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { kind: k.kind, path: k.path(), dir, ...extra };
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return `${f(s[Math.floor(s.length / 2)])} (${f(s[0])}-${f(s[s.length - 1])})`;
};

async function goneAfterKill(k) {
  const t = context();
  try {
    const { child, handles, exited } = await startManager(t, [spec(t, k, {})]);
    await connectFrontEnds(t, handles); // serving: virtiofsd has forked its sandbox child
    const since = Date.now();
    child.kill('SIGKILL');
    await exited;
    return await msUntilGroupsGone(handles, since);
  } finally {
    await t.done();
  }
}

async function adoptLatency(k) {
  const t = context();
  try {
    const { child, handles, exited } = await startManager(t, [spec(t, k, { lifetime: 'survive' })]);
    child.kill('SIGKILL');
    await exited;
    const Kind = k.kind === 'nydusd' ? Nydusd : Virtiofsd;
    const since = process.hrtime.bigint();
    const d = await Kind.adopt(handles[0], { logger: pino({ level: 'silent' }) });
    const ms = Number(process.hrtime.bigint() - since) / 1e6;
    await d.stop();
    killGroups(handles);
    return ms;
  } finally {
    await t.done();
  }
}

async function linesDelivered() {
  const t = context();
  try {
    const { child, handles, exited } = await startManager(t, [spec(t, KINDS[0], { lifetime: 'survive', debug: true })]);
    child.kill('SIGKILL');
    await exited;
    const fe = await connectVhostUser(handles[0].sockets.socket.path);
    for (let i = 0; i < REQUESTS; i++) await fe.getFeatures();
    let lines = 0;
    const logger = pino({ level: 'debug', base: null }, { write: (s) => JSON.parse(s).subsystem && lines++ });
    const d = await Virtiofsd.adopt(handles[0], { logger });
    await new Promise((r) => setTimeout(r, 500));
    const held = lines - 1; // "virtiofsd adopted" is ours
    await d.stop();
    fe.close();
    return held;
  } finally {
    await t.done();
  }
}

(async () => {
  const rows = [];
  for (const k of KINDS) {
    const gone = [];
    const adopt = [];
    for (let i = 0; i < RUNS; i++) {
      gone.push(await goneAfterKill(k));
      adopt.push(await adoptLatency(k));
      process.stderr.write('.');
    }
    rows.push(`| ${k.name} | ${stats(gone)} | ${stats(adopt)} |`);
  }
  const delivered = [];
  for (let i = 0; i < RUNS; i++) delivered.push(await linesDelivered());
  process.stderr.write('\n');
  console.log(
    `Lifetime figures, ${RUNS} runs each, median (min-max); ${os.cpus().length} cores, Linux ${os.release()}\n`,
  );
  console.log("| daemon | all processes gone after the manager's SIGKILL (ms) | adopt() (ms) |");
  console.log('|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(
    `\nLines logged while no manager was attached and delivered after re-adoption (legacy virtiofsd -d, ` +
      `${REQUESTS} GET_FEATURES = ~${2 * REQUESTS} lines): ${stats(delivered)}`,
  );
})();

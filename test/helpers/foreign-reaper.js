'use strict';
/**
 * A foreign reaper and a recycled pid, in a process of its own (it writes ns_last_pid and must
 * not disturb the test runner): `node foreign-reaper.js <json>` with { hits, maxTries }.
 *
 * Each round spawns `sleep` in a new process group through the library, SIGKILLs it, and reaps
 * it with a tiny test addon (build/helpers/reaper.node) calling waitpid() on its pid, as any
 * other native module might. Then, before our exit watcher runs, it sets ns_last_pid to pid - 1
 * and starts a sentinel in a session of its own, so that the sentinel holds the pid and the
 * process-group id our child had. Our onExit then does what a supervisor does: SIGKILL the
 * group. Prints {hits, tries, sentinelsSignalled, exits, sent}: the sentinel must live.
 *
 * With { teardown: true } each round runs in a process that exits right after the foreign reap
 * (see exitRound): the teardown's SIGKILL of the group must not reach the sentinel either.
 */
const { execFileSync, spawn: nodeSpawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { isZombieOrGone, sleep } = require('./util.js');

const [json] = process.argv.slice(2);
if (json === undefined) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const root = path.resolve(__dirname, '..', '..');
const native = require(path.join(root, 'dist', 'process', 'native.js'));
const reaper = require(path.join(root, 'build', 'helpers', 'reaper.node'));

async function round() {
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  const child = native.spawn({
    file: '/bin/sleep',
    argv: ['sleep', '100'],
    fds: ['null', 'null', 'null'],
    newProcessGroup: true,
    onExit: (exit) => resolveExit({ exit, sent: child.signal('SIGKILL', { group: true }) }),
  });
  const pid = child.pid;
  child.signal('SIGKILL');
  const status = reaper.waitpid(pid); // the foreign reaper: our pidfd watcher has not run yet
  fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
  const sentinel = nodeSpawn('/bin/sleep', ['100'], { detached: true, stdio: 'ignore' });
  const sentinelEnd = new Promise((r) => sentinel.once('exit', (code, signal) => r(signal ?? `exit ${code}`)));
  const { exit, sent } = await exited;
  await sleep(20);
  const hit = sentinel.pid === pid;
  const alive = sentinel.exitCode === null && sentinel.signalCode === null;
  sentinel.kill('SIGTERM');
  const end = await sentinelEnd;
  return { hit, status, exit, sent, signalled: !alive || end !== 'SIGTERM' };
}

/**
 * One round in a process of its own that exits right after the foreign reap: its exit watcher
 * never runs, so the process 'exit' teardown (abandonAll: SIGKILL every child still held, with
 * its group) meets a child that someone else reaped. Prints {pid, sentinel}.
 */
function exitRound() {
  const child = native.spawn({
    file: '/bin/sleep',
    argv: ['sleep', '100'],
    fds: ['null', 'null', 'null'],
    newProcessGroup: true,
    onExit: () => {},
  });
  const pid = child.pid;
  child.signal('SIGKILL');
  reaper.waitpid(pid);
  fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
  const sentinel = nodeSpawn('/bin/sleep', ['100'], { detached: true, stdio: 'ignore' });
  process.stdout.write(JSON.stringify({ pid, sentinel: sentinel.pid }));
  process.exit(0);
}

async function teardownRound() {
  const out = execFileSync(process.execPath, [__filename, '{"exitRound":true}'], { encoding: 'utf8' });
  const { pid, sentinel } = JSON.parse(out);
  await sleep(20);
  const signalled = isZombieOrGone(sentinel);
  try {
    process.kill(sentinel, 'SIGKILL');
  } catch {
    // gone already
  }
  return { hit: sentinel === pid, signalled, exit: null, sent: false };
}

async function main() {
  const { hits, maxTries, teardown } = JSON.parse(json);
  const out = { hits: 0, tries: 0, sentinelsSignalled: 0, exits: [], sent: [] };
  while (out.hits < hits && out.tries < maxTries) {
    out.tries++;
    const r = teardown ? await teardownRound() : await round();
    if (!r.hit) continue; // another process took the pid first: try again
    out.hits++;
    if (r.signalled) out.sentinelsSignalled++;
    if (r.exit) out.exits.push(r.exit);
    out.sent.push(r.sent);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

if (JSON.parse(json).exitRound) {
  exitRound();
  return;
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});

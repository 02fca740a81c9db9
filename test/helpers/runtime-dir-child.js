'use strict';
/**
 * A manager process for the runtime directory tests, as any uid: runs the operations of its
 * argument (JSON: [{ op, pid }]) from dist/process/runtime-dir.js in order and prints one JSON line per
 * operation, { ok: result } or { error: { code, reason, component, owner, mode, message } }.
 * op 'hold' prints { ok: 'holding' } and keeps the process (and its locks) alive until it is
 * killed or its stdin closes. Ops: runtimeDir, sealKey (hex), lock, unlock, held, hold.
 */
const rd = require('../../dist/process/runtime-dir.js');

const ops = {
  runtimeDir: () => rd.runtimeDir(),
  sealKey: () => rd.sealKey().toString('hex'),
  lock: ({ pid }) => rd.lockDaemon(pid),
  unlock: ({ pid }) => rd.unlockDaemon(pid),
  held: ({ pid }) => rd.daemonLockHeld(pid),
};

for (const step of JSON.parse(process.argv[2])) {
  if (step.op === 'hold') {
    process.stdout.write(`${JSON.stringify({ ok: 'holding' })}\n`);
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
    break;
  }
  let line;
  try {
    line = { ok: ops[step.op](step) ?? null };
  } catch (err) {
    const { code, reason, component, owner, mode, message } = err;
    line = { error: { code, reason, component, owner, mode, message } };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

'use strict';
/**
 * A worker_thread that loads the addon and spawns probes on request, for the teardown test.
 *
 * Requests (postMessage): {id, cmd: 'spawn', args, newProcessGroup, setEnv} → {id, event:
 * 'spawned', pid, stat, grandchild, env} once the probe has written its report (setEnv: entries
 * set in this worker's own process.env first; env: the probe's environment); {id, cmd: 'signal', pid,
 * signal} → {id, event: 'signalled', sent}. Every exit is posted as {event: 'exit', pid, exit}.
 * A failed request answers {id, event: 'error', error}.
 */
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');

if (!parentPort) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const { spawn } = require('../../dist/process/native.js');
const { probePath, procStat, tempReportPath, waitForReport } = require('./util.js');

const children = new Map();

async function handle(msg) {
  if (msg.cmd === 'spawn') {
    if (msg.setEnv) Object.assign(process.env, msg.setEnv);
    const out = tempReportPath();
    const child = spawn({
      file: probePath,
      argv: [probePath, '--out', out, ...msg.args],
      fds: ['null', 'null', 'null'],
      newProcessGroup: Boolean(msg.newProcessGroup),
      onExit: (exit) => parentPort.postMessage({ event: 'exit', pid: child.pid, exit }),
    });
    children.set(child.pid, child);
    const report = await waitForReport(out);
    fs.rmSync(out, { force: true });
    return {
      event: 'spawned',
      pid: child.pid,
      stat: procStat(child.pid),
      grandchild: report.grandchild ?? null,
      env: report.env,
    };
  }
  if (msg.cmd === 'signal') {
    return { event: 'signalled', sent: children.get(msg.pid).signal(msg.signal) };
  }
  throw new Error(`unknown request ${JSON.stringify(msg)}`);
}

parentPort.on('message', (msg) => {
  handle(msg).then(
    (answer) => parentPort.postMessage({ id: msg.id, ...answer }),
    (err) => parentPort.postMessage({ id: msg.id, event: 'error', error: String(err && err.stack) }),
  );
});

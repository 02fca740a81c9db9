'use strict';
/**
 * Shared by the lifetime tests: the daemons to run (both virtiofsd dialects and nydusd through
 * its stand-in, or $NYDUSD), a manager process or worker that starts them
 * (lifetime-manager.js), and the cleanup that never signals a recycled pid.
 */
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const h = require('./daemons.js');
const { sleep, tempDir } = require('./util.js');

const MANAGER = path.join(__dirname, 'lifetime-manager.js');
const STANDIN = path.join(__dirname, 'nydusd-standin.js');

/** The three daemons: { name, kind, path() }. path() throws (the test fails) when a dialect is missing. */
const KINDS = [
  { name: 'virtiofsd legacy', kind: 'virtiofsd', path: () => h.virtiofsdPath('legacy') },
  { name: 'virtiofsd rust', kind: 'virtiofsd', path: () => h.virtiofsdPath('rust') },
  {
    name: process.env.NYDUSD ? 'nydusd' : 'nydusd (stand-in)',
    kind: 'nydusd',
    path: () => process.env.NYDUSD || STANDIN,
  },
];

/** The daemon spec for lifetime-manager.js, in a fresh dir of its own. */
function spec(t, k, extra = {}) {
  return { kind: k.kind, path: k.path(), dir: tempDir(t, 'vlt-'), ...extra };
}

/** SIGKILL the group of each handle whose leader is still that very process (start time checked). */
function killGroups(handles) {
  for (const hd of handles) {
    const st = h.procStat(hd.pid);
    if (st && st.starttime === hd.startTime && st.state !== 'Z') {
      try {
        process.kill(-hd.pgid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
}

/**
 * Start a manager process (a child Node) that starts `daemons`; resolves { child, handles,
 * log } once every daemon is ready. Whatever it leaves running is killed after t.
 */
async function startManager(t, daemons, { then, log } = {}) {
  const dir = tempDir(t, 'vlm-');
  const result = path.join(dir, 'result.json');
  const child = cp.spawn(process.execPath, [MANAGER, JSON.stringify({ daemons, result, then, log })], {
    stdio: 'inherit',
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let handles = [];
  t.after(() => {
    child.kill('SIGKILL');
    killGroups(handles);
  });
  const out = await h.waitFor(() => fs.existsSync(result) && JSON.parse(fs.readFileSync(result, 'utf8')), {
    timeoutMs: 20000,
    what: 'the manager to start its daemons',
  });
  assert.equal(out.error, undefined, out.error);
  handles = out.handles;
  return { child, handles, exited };
}

/** The same from a worker_thread of ours: resolves { worker, handles }. */
async function startWorkerManager(t, daemons) {
  const worker = new Worker(MANAGER, { workerData: { daemons } });
  let handles = [];
  t.after(async () => {
    await worker.terminate();
    killGroups(handles);
  });
  const out = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.equal(out.error, undefined, out.error);
  handles = out.handles;
  return { worker, handles };
}

/** ms from now until no process of any handle's group is alive (polled every 2 ms), or null after limitMs. */
async function msUntilGroupsGone(handles, since, limitMs = 5000) {
  const pgids = handles.map((hd) => hd.pgid);
  for (;;) {
    if (h.liveMembersOfGroups(pgids).length === 0) return Date.now() - since;
    if (Date.now() - since > limitMs) return null;
    await sleep(2);
  }
}

/**
 * Connect a vhost-user front-end to the daemon of each handle and make one request, so that
 * the daemons have forked what they fork for a session (legacy virtiofsd: its sandbox child).
 * Resolves to the front-ends (closed after t).
 */
async function connectFrontEnds(t, handles) {
  const { connectVhostUser } = require('./vhost-user.js');
  const out = [];
  for (const hd of handles) {
    const fe = await connectVhostUser((hd.sockets.socket ?? hd.sockets.sock).path);
    t.after(() => fe.close());
    if (hd.kind === 'virtiofsd') await fe.getFeatures();
    out.push(fe);
  }
  await sleep(100);
  return out;
}

/** True while the process of `handle` runs (same pid, same start time, not a zombie). */
function running(handle) {
  const st = h.procStat(handle.pid);
  return st !== null && st.starttime === handle.startTime && st.state !== 'Z' && st.state !== 'X';
}

module.exports = {
  KINDS,
  spec,
  killGroups,
  startManager,
  startWorkerManager,
  msUntilGroupsGone,
  running,
  connectFrontEnds,
};

'use strict';
/**
 * cgroup v2 for the cgroup tests: where it is mounted (a failure that says so when it is not),
 * a fresh directory per test, removed with everything below it afterwards, and a manager
 * process (helpers/cgroup-manager.js) to race against.
 */
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { cgroup2Mount } = require('../../dist/index.js');

/** The cgroup v2 mount, or a failure that says why there is none. */
function v2() {
  const mount = cgroup2Mount();
  assert.ok(mount, 'no cgroup2 entry in /proc/self/mountinfo: these tests need a cgroup v2 hierarchy');
  return mount;
}

/** Kill what is in dir and below it, then remove it all, deepest first. */
function removeTree(dir) {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(path.join(dir, e.name));
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    // No cgroup.kill (Linux < 5.14) or nothing to kill: rmdir says what is left.
  }
  for (let i = 0; i < 100; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if (err.code !== 'EBUSY') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** A unique name below the v2 mount (relative, not created); everything below it removed after t. */
function uniqueName(t, prefix = 'vfd-test') {
  const name = `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  t.after(() => removeTree(path.join(v2(), name)));
  return name;
}

/** A fresh, existing cgroup below the v2 mount (absolute path), removed with its tree after t. */
function freshCgroup(t, prefix) {
  const dir = path.join(v2(), uniqueName(t, prefix));
  fs.mkdirSync(dir);
  return dir;
}

/** The pids in a cgroup's cgroup.procs. */
function members(dir) {
  return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

/** True while a process is in the cgroup or below it. */
function populated(dir) {
  return /^populated 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
}

/** The cgroup v2 line's path ("/a/b") of /proc/<pid>/cgroup. */
function cgroupOf(pid) {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line.slice(3);
}

/**
 * A manager process (helpers/cgroup-manager.js), ended after t. `call(op, fields)` resolves to
 * its reply. `env` adds to its environment (LD_PRELOAD, ...).
 */
function manager(t, env = {}) {
  const child = fork(path.join(__dirname, 'cgroup-manager.js'), [], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map();
  let next = 0;
  child.on('message', (m) => {
    pending.get(m.id)?.(m);
    pending.delete(m.id);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.once('exit', (code, signal) => {
    for (const reject of pending.values())
      reject({ ok: false, error: { message: `manager exited ${code ?? signal}` } });
    pending.clear();
  });
  t.after(async () => {
    if (child.connected) child.disconnect();
    await exited;
  });
  return {
    pid: child.pid,
    call(op, fields = {}) {
      const id = next++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.send({ id, op, ...fields });
      });
    },
  };
}

module.exports = { cgroupOf, freshCgroup, manager, members, populated, removeTree, uniqueName, v2 };

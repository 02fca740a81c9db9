'use strict';
/**
 * Real unprivileged users for the tests that play one (a hostile co-tenant, a desktop app's
 * logged-in user): created with useradd for one test, removed with userdel when it ends, every
 * process of theirs killed first. Needs root, as CI runs; a test that cannot create its user
 * fails with the reason (never skips).
 */
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');

/** A short, unique user name: useradd refuses names over 32 bytes, and ps truncates over 8. */
function userName(prefix) {
  return `${prefix}${crypto.randomBytes(3).toString('hex')}`;
}

/**
 * Create a user for test `t` (removed in `t.after`). With `home`, a home directory owned by it
 * is made (useradd -m). useradd gives it an /etc/subuid and /etc/subgid range where those files
 * exist (Debian's login.defs: 65536 ids from 100000 on); `subids` says what it got, or null.
 * Returns `{ name, uid, gid, home, subids }`.
 */
function createUser(t, { prefix = 'vfdt', home = false } = {}) {
  if (process.getuid() !== 0) {
    throw new Error(`this test creates a user with useradd and needs root (running as uid ${process.getuid()})`);
  }
  const name = userName(prefix);
  execFileSync('useradd', [home ? '-m' : '-M', '-s', '/usr/sbin/nologin', '-U', name], { stdio: 'pipe' });
  t.after(() => removeUser(name));
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  return { name, uid, gid, home: home ? `/home/${name}` : null, subids: subIds(name) };
}

/** The user's first /etc/subuid and /etc/subgid ranges, or null when it has none. */
function subIds(name) {
  const first = (file) => {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return null;
    }
    const line = text.split('\n').find((l) => l.startsWith(`${name}:`));
    if (!line) return null;
    const [, start, count] = line.split(':');
    return { start: Number(start), count: Number(count) };
  };
  const uid = first('/etc/subuid');
  const gid = first('/etc/subgid');
  return uid && gid ? { uid, gid } : null;
}

/**
 * Kill whatever the user still runs, then remove it (and its home, mail spool and sub-ids).
 * Async, so that our own event loop can reap children of ours that ran as the user (a zombie
 * still counts as the user's process for userdel). Throws, naming what the user still runs,
 * when it cannot be removed within 10 s: a user left behind is a failure, never silent.
 */
async function removeUser(name) {
  let last = '';
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('pkill', ['-KILL', '-u', name], { stdio: 'ignore' });
    } catch {
      // pkill exits 1 when nothing matched
    }
    try {
      execFileSync('userdel', ['-r', name], { stdio: 'pipe' });
      return;
    } catch (err) {
      const stderr = String(err.stderr);
      if (/does not exist|not found/.test(stderr)) return;
      // 8: the user still has processes (SIGKILLed, not yet reaped); 12: its mail spool or home.
      if (err.status !== 8 && err.status !== 12 && !/currently used|mail spool/.test(stderr)) throw err;
      last = `userdel exited ${err.status}: ${stderr.trim()}`;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let ps;
  try {
    ps = execFileSync('ps', ['-o', 'pid,ppid,stat,comm', '-u', name], { encoding: 'utf8' });
  } catch {
    ps = '(ps lists nothing)';
  }
  throw new Error(`test user ${name} could not be removed within 10 s (${last}); it still runs:\n${ps}`);
}

/**
 * argv that runs `file args` as `user` (its uid, gid and supplementary groups, a clean
 * environment with HOME, USER, PATH and what `env` adds), through util-linux's setpriv.
 */
function asUser(user, file, args = [], env = {}) {
  const vars = Object.entries({
    HOME: user.home ?? '/nonexistent',
    USER: user.name,
    LOGNAME: user.name,
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    ...env,
  }).map(([k, v]) => `${k}=${v}`);
  return [
    'setpriv',
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    '--init-groups',
    '--reset-env',
    '--',
    'env',
    '-i',
    ...vars,
    file,
    ...args,
  ];
}

/**
 * Run `file args` as `user` to completion: `{ code, signal, stdout, stderr }`. `input` is written
 * to its stdin; `timeoutMs` (default 60 s) SIGKILLs it and rejects.
 */
function runAs(user, file, args = [], { env = {}, input, timeoutMs = 60000, cwd = '/' } = {}) {
  const [cmd, ...rest] = asUser(user, file, args, env);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, rest, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [[], []];
    child.stdout.on('data', (b) => out[0].push(b));
    child.stderr.on('data', (b) => out[1].push(b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} as ${user.name} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out[0]).toString(), stderr: Buffer.concat(out[1]).toString() });
    });
    child.stdin.end(input ?? '');
  });
}

/** Start `file args` as `user` and return the ChildProcess (its stdio piped), killed when `t` ends. */
function spawnAs(t, user, file, args = [], { env = {}, cwd = '/' } = {}) {
  const [cmd, ...rest] = asUser(user, file, args, env);
  const child = spawn(cmd, rest, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/**
 * Run `fn` while holding shadow's lock on `file` (/etc/subuid, /etc/subgid): `<file>.lock`, made
 * as shadow's commonio does - a file `<file>.<pid>` holding our pid, hard-linked to the lock name,
 * so that useradd/usermod of other tests wait for us, and we for them (for up to 10 s).
 */
function withShadowLock(file, fn) {
  const mine = `${file}.${process.pid}`;
  const lock = `${file}.lock`;
  fs.writeFileSync(mine, `${process.pid}`);
  try {
    for (let i = 0; ; i++) {
      try {
        fs.linkSync(mine, lock);
        break;
      } catch (err) {
        if (err.code !== 'EEXIST' || i >= 100) throw err;
        execFileSync('sleep', ['0.1']);
      }
    }
    try {
      return fn();
    } finally {
      fs.unlinkSync(lock);
    }
  } finally {
    fs.unlinkSync(mine);
  }
}

/** Replace `file`'s text by `edit(text)`, atomically (a temporary file renamed over it, mode 0644). */
function editShadowFile(file, edit) {
  withShadowLock(file, () => {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const tmp = `${file}.vfd-${process.pid}`;
    fs.writeFileSync(tmp, edit(text), { mode: 0o644 });
    fs.renameSync(tmp, file);
  });
}

/**
 * Give `name` (root, say, whom usermod will not change while it runs processes) the range
 * `start`..`start + count - 1` in /etc/subuid and /etc/subgid, first in the file; removed after `t`.
 */
function addSubIds(t, name, start, count) {
  const line = `${name}:${start}:${count}`;
  for (const file of ['/etc/subuid', '/etc/subgid']) editShadowFile(file, (text) => `${line}\n${text}`);
  t.after(() => {
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      editShadowFile(file, (text) =>
        text
          .split('\n')
          .filter((l) => l !== line)
          .join('\n'),
      );
    }
  });
}

module.exports = { createUser, removeUser, asUser, runAs, spawnAs, subIds, addSubIds };

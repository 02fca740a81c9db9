'use strict';
/**
 * Trusted files (issue 16, findings 2, 3 and 7), as attacks by a real unprivileged user: the
 * rules of the directory walk (native), the runtime directory with its seal key and adoption
 * lock, and the CLI's state files - owned directories, planted symlinks, FIFOs, /dev/zero, huge
 * files - each refused fast and typed with nothing touched, and controls that the legitimate
 * paths still work with a real virtiofsd.
 *
 * Needs root (useradd, chown), setpriv (util-linux), mkfifo, Debian's /var/run -> /run symlink,
 * and the Rust virtiofsd (test/helpers/daemons.js finds it). Whatever is missing FAILS.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const native = require('../dist/process/native.js');
const tf = require('../dist/process/trusted-file.js');
const rd = require('../dist/process/runtime-dir.js');
const lifetime = require('../dist/cli/cli-lifetime.js');
const { UntrustedFileError } = require('../dist/common/errors.js');
const { HANDLE_FORMAT } = require('../dist/process/handle.js');
const { cli, detached } = require('./helpers/cli.js');
const h = require('./helpers/daemons.js');
const { asUser, createUser, runAs } = require('./helpers/users.js');
const { tempDir } = require('./helpers/util.js');

const CHILD = path.join(__dirname, 'helpers', 'runtime-dir-child.js');
const DIST = path.join(__dirname, '..', 'dist');
/** A refusal must come at once; past this, the test fails as a hang rather than waiting for the runner. */
const FAST_MS = 10000;
/** run --detach of a real virtiofsd, start to ready. */
const START_MS = 60000;

function requireRoot() {
  assert.equal(process.getuid(), 0, 'this test needs root (useradd, chown, /run)');
}

/** A 0755 root directory in /tmp that other uids may traverse, removed after t. */
function openDir(t) {
  const dir = tempDir(t, 'vtf-');
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** mkdir `p` with exactly this owner and mode (chmod after mkdir: the umask does not apply). */
function mkdir(p, { uid = 0, gid = uid, mode = 0o700 } = {}) {
  fs.mkdirSync(p);
  fs.chownSync(p, uid, gid);
  fs.chmodSync(p, mode);
  return p;
}

/** A file with this content, owner and mode. */
function file(p, content, { uid = 0, gid = uid, mode = 0o600 } = {}) {
  fs.writeFileSync(p, content);
  fs.chownSync(p, uid, gid);
  fs.chmodSync(p, mode);
  return p;
}

/** A root-owned 0700 directory under /run (a tmpfs only root can write), removed after t. */
function runDir(t) {
  const dir = fs.mkdtempSync('/run/vtf-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha256 = (p) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/** A root-owned 0640 file whose survival a test checks, by its hash and its inode. */
function victim(dir) {
  const p = file(path.join(dir, 'victim'), 'root secret\n', { mode: 0o640 });
  const st = fs.lstatSync(p);
  const hash = sha256(p);
  return {
    file: p,
    assertUntouched(what) {
      const now = fs.lstatSync(p);
      assert.ok(now.isFile(), `${what}: the victim is no longer a regular file`);
      assert.equal(now.ino, st.ino, `${what}: the victim was replaced`);
      assert.equal(now.uid, 0, `${what}: the victim's owner changed`);
      assert.equal(now.mode & 0o7777, 0o640, `${what}: the victim's mode changed`);
      assert.equal(sha256(p), hash, `${what}: the victim's content changed`);
    },
  };
}

/** The native call `fn` refused with a trust refusal whose fields are `fields` (mode: permissions only). */
function refused(fn, fields, what = '') {
  assert.throws(fn, (err) => {
    const r = native.trustRefusal(err);
    assert.ok(r, `${what}: a trust refusal, not ${err.message}`);
    for (const [k, v] of Object.entries(fields)) {
      if (k === 'code') assert.equal(err.code, v, `${what}: errno of ${err.message}`);
      else assert.equal(k === 'mode' ? r.mode & 0o7777 : r[k], v, `${what}: ${k} of ${err.message}`);
    }
    return true;
  });
}

/** The UntrustedFileError (ERR_UNTRUSTED_FILE) that `fn` throws or rejects with, checked for `fields`. */
async function untrusted(fn, fields, what = '') {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: refused`);
  assert.ok(err instanceof UntrustedFileError, `${what}: an UntrustedFileError, not ${err.stack}`);
  assert.equal(err.code, 'ERR_UNTRUSTED_FILE');
  for (const [k, v] of Object.entries(fields)) {
    assert.equal(k === 'mode' ? err.mode & 0o7777 : err[k], v, `${what}: ${k} of ${err.message}`);
  }
  return err;
}

/** Processes whose command line names `dir` (a daemon started on it, or left running). */
function processesOn(dir) {
  return h.allProcesses().filter((st) => {
    try {
      return fs.readFileSync(`/proc/${st.pid}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  });
}

/** A `sleep` in a process group of its own, SIGKILLed after t: a pid nobody else locks, or a sentinel. */
function sleeper(t) {
  const child = cp.spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child;
}

// ---- the walk's rules (native) ------------------------------------------------------------

test('walk: a sticky directory passes when the entry on the way is ours, fails when it is another uid’s', (t) => {
  requireRoot();
  const user = createUser(t);
  const base = openDir(t);
  const sticky = mkdir(path.join(base, 'sticky'), { mode: 0o1777 });
  const mine = mkdir(path.join(sticky, 'mine'));
  const ours = path.join(mine, 'state.json');
  assert.equal(native.writeTrustedFile(ours, Buffer.from('ok'), 0o600), true);
  assert.equal(String(native.readTrustedFile(ours)), 'ok', '/tmp/<our 0700 dir>/state.json');
  const direct = path.join(sticky, 'direct.json');
  assert.equal(native.writeTrustedFile(direct, Buffer.from('d'), 0o600), true);
  assert.equal(String(native.readTrustedFile(direct)), 'd', 'our own file right in the sticky directory');

  const theirs = mkdir(path.join(sticky, 'theirs'), { uid: user.uid, mode: 0o755 });
  const inTheirs = path.join(theirs, 'state.json');
  refused(() => native.readTrustedFile(inTheirs), { reason: 'foreign-entry', component: theirs, owner: user.uid });
  refused(() => native.writeTrustedFile(inTheirs, Buffer.from('x'), 0o600), { reason: 'foreign-entry' }, 'write');
  assert.deepEqual(fs.readdirSync(theirs), [], 'nothing written into their directory');

  const theirFile = file(path.join(sticky, 'f.json'), '{}', { uid: user.uid });
  refused(() => native.readTrustedFile(theirFile), { reason: 'foreign-entry', component: theirFile, owner: user.uid });
  refused(() => native.writeTrustedFile(theirFile, Buffer.from('x'), 0o600), { reason: 'foreign-entry' }, 'replace');
  refused(() => native.removeTrustedFile(theirFile), { reason: 'foreign-entry' }, 'remove');
  assert.equal(fs.readFileSync(theirFile, 'utf8'), '{}', 'their file is left alone');

  // Their symlink to our own directory: following it is as unsafe as the name they chose.
  const link = path.join(sticky, 'link');
  fs.symlinkSync(mine, link);
  fs.lchownSync(link, user.uid, user.gid);
  refused(
    () => native.readTrustedFile(path.join(link, 'state.json')),
    { reason: 'foreign-entry', component: link, owner: user.uid, code: 'ELOOP' },
    'their symlink',
  );
});

test('walk: a group- or world-writable directory on the way fails, and one another uid owns; the file must be ours and writable by nobody else', (t) => {
  requireRoot();
  const user = createUser(t);
  const base = openDir(t);
  const cases = [
    // [name, directory owner, directory mode, reason]
    ['group-writable', 0, 0o775, 'writable'],
    ['world-writable', 0, 0o777, 'writable'],
    ['owned by the user', user.uid, 0o755, 'owner'],
  ];
  for (const [name, uid, mode, reason] of cases) {
    const outer = mkdir(path.join(base, name), { uid, mode });
    // Root's own 0700 directory inside: the outer one could still swap it.
    const inner = mkdir(path.join(outer, 'inner'));
    const p = path.join(inner, 'state.json');
    refused(() => native.readTrustedFile(p), { reason, component: outer, owner: uid, mode, code: 'EPERM' }, name);
    refused(() => native.writeTrustedFile(p, Buffer.from('x'), 0o600), { reason, component: outer }, `${name}: write`);
    refused(() => native.removeTrustedFile(p), { reason, component: outer }, `${name}: remove`);
    assert.deepEqual(fs.readdirSync(inner), [], `${name}: nothing written`);
    // The file's own directory is judged too, with no file in it yet.
    refused(() => native.readTrustedFile(path.join(outer, 'state.json')), { reason, component: outer }, name);
  }
  const ok = mkdir(path.join(base, 'ok'));
  for (const [name, fileUid, fileMode, reason] of [
    ['owned by the user', user.uid, 0o600, 'owner'],
    ['group-writable', 0, 0o620, 'writable'],
    ['world-writable', 0, 0o602, 'writable'],
  ]) {
    const p = file(path.join(ok, `${name}.json`), '{}', { uid: fileUid, mode: fileMode });
    refused(() => native.readTrustedFile(p), { reason, component: p, owner: fileUid, mode: fileMode }, name);
  }
});

test('walk: trusted symlinks still work - Debian’s /var/run -> /run', (t) => {
  requireRoot();
  assert.ok(fs.lstatSync('/var/run').isSymbolicLink(), 'this test needs /var/run to be a symlink (Debian)');
  assert.equal(fs.realpathSync('/var/run'), '/run', 'this test needs /var/run -> /run');
  const dir = runDir(t);
  const via = path.join('/var/run', path.basename(dir), 'state.json');
  assert.equal(native.writeTrustedFile(via, Buffer.from('v'), 0o600), true);
  assert.equal(String(native.readTrustedFile(path.join(dir, 'state.json'))), 'v');
  assert.equal(String(native.readTrustedFile(via)), 'v');
  assert.equal(native.removeTrustedFile(via), true);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('read: a FIFO, a symlink to /dev/zero, a device, a directory are refused without being read; more than maxBytes is refused, never cut', (t) => {
  requireRoot();
  const dir = tempDir(t, 'vtf-');
  const fifo = path.join(dir, 'fifo');
  cp.execFileSync('mkfifo', [fifo]);
  const zero = path.join(dir, 'zero');
  fs.symlinkSync('/dev/zero', zero);
  fs.mkdirSync(path.join(dir, 'sub'));
  refused(() => native.readTrustedFile(fifo), { reason: 'type', component: fifo, code: 'EINVAL' }, 'FIFO');
  refused(() => native.readTrustedFile(zero), { reason: 'type', component: zero, code: 'ELOOP' }, 'symlink');
  refused(() => native.readTrustedFile('/dev/null'), { reason: 'type', code: 'EINVAL' }, 'device');
  refused(() => native.readTrustedFile(path.join(dir, 'sub')), { reason: 'type', code: 'EISDIR' }, 'directory');

  const exact = file(path.join(dir, 'exact'), 'x'.repeat(100));
  assert.equal(native.readTrustedFile(exact, 100).length, 100);
  refused(() => native.readTrustedFile(exact, 99), { reason: 'size', size: 100, code: 'EFBIG' }, 'one byte over');
  const big = path.join(dir, 'big');
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 2 ** 30);
  refused(() => native.readTrustedFile(big), { reason: 'size', size: 2 ** 30 }, '1 GiB sparse, default 64 KiB');
  assert.equal(native.readTrustedFile(path.join(dir, 'none')), null, 'no such file: null');
});

test('write: exactly the mode asked, no temporary file left, replaced by rename; exclusive never replaces; anything but our regular file at the name is refused and left alone', (t) => {
  requireRoot();
  const user = createUser(t);
  const dir = tempDir(t, 'vtf-');
  const p = path.join(dir, 'f');
  const umask = process.umask(0o077);
  try {
    assert.equal(native.writeTrustedFile(p, Buffer.from('a'), 0o640), true);
  } finally {
    process.umask(umask);
  }
  assert.equal(fs.statSync(p).mode & 0o7777, 0o640, 'the umask did not apply');
  const first = fs.statSync(p).ino;
  assert.equal(native.writeTrustedFile(p, Buffer.from('b'), 0o600), true);
  assert.equal(fs.readFileSync(p, 'utf8'), 'b');
  assert.notEqual(fs.statSync(p).ino, first, 'a new file renamed over the old one, not the old one rewritten');
  assert.equal(native.writeTrustedFile(p, Buffer.from('c'), 0o600, { exclusive: true }), false);
  assert.equal(fs.readFileSync(p, 'utf8'), 'b', 'exclusive: the existing file is kept');
  assert.equal(native.writeTrustedFile(path.join(dir, 'g'), Buffer.from('g'), 0o600, { exclusive: true }), true);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['f', 'g'], 'no temporary file left');

  const v = victim(dir);
  const link = path.join(dir, 'link');
  fs.symlinkSync(v.file, link);
  const fifo = path.join(dir, 'fifo');
  cp.execFileSync('mkfifo', [fifo]);
  const theirs = file(path.join(dir, 'theirs'), 'theirs', { uid: user.uid });
  for (const [target, reason] of [
    [link, 'type'],
    [fifo, 'type'],
    [theirs, 'owner'],
  ]) {
    refused(() => native.writeTrustedFile(target, Buffer.from('x'), 0o600), { reason, component: target }, target);
    refused(() => native.removeTrustedFile(target), { reason, component: target }, `remove ${target}`);
  }
  v.assertUntouched('a symlink at the name');
  assert.ok(fs.lstatSync(link).isSymbolicLink() && fs.lstatSync(fifo).isFIFO(), 'left as they were');
  assert.equal(fs.readFileSync(theirs, 'utf8'), 'theirs');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['f', 'fifo', 'g', 'link', 'theirs', 'victim']);
  assert.equal(native.removeTrustedFile(p), true);
  assert.equal(native.removeTrustedFile(p), false, 'nothing there any more');
});

test('private directory: made 0700 whatever the umask; one of another mode or owner, or a symlink, is refused and never changed', (t) => {
  requireRoot();
  const user = createUser(t);
  const base = tempDir(t, 'vtf-');
  const p = path.join(base, 'p');
  const umask = process.umask(0o277);
  try {
    assert.equal(native.makePrivateDir(p, { create: true }), true);
  } finally {
    process.umask(umask);
  }
  assert.equal(fs.statSync(p).mode & 0o7777, 0o700);
  assert.equal(native.makePrivateDir(p, { create: true }), false, 'there already, and private');
  const loose = mkdir(path.join(base, 'loose'), { mode: 0o755 });
  refused(() => native.makePrivateDir(loose, { create: true }), { reason: 'mode', mode: 0o755, owner: 0 }, 'mode');
  assert.equal(fs.statSync(loose).mode & 0o7777, 0o755, 'never chmod’ed');
  const theirs = mkdir(path.join(base, 'theirs'), { uid: user.uid });
  refused(() => native.makePrivateDir(theirs, { create: true }), { reason: 'owner', owner: user.uid }, 'owner');
  assert.equal(fs.statSync(theirs).uid, user.uid, 'never chown’ed');
  const link = path.join(base, 'link');
  fs.symlinkSync(p, link);
  refused(() => native.makePrivateDir(link, { create: true }), { reason: 'type', code: 'ELOOP' }, 'symlink');
  assert.throws(() => native.makePrivateDir(path.join(base, 'none')), { code: 'ENOENT' }, 'not created unless asked');
});

test('UntrustedFileError: one line naming the path, the component at fault with its owner and mode, and the fix', async (t) => {
  requireRoot();
  const user = createUser(t);
  const base = openDir(t);
  const vm = mkdir(path.join(base, 'vm'), { uid: user.uid, mode: 0o755 });
  const p = path.join(vm, 'state.json');
  const fix = /Keep such files in a directory that only you \(or root\) can write, such as \/run\/virtiofs-daemon$/;
  let err = await untrusted(() => tf.readTrustedFile(p, { what: '--state' }), {
    path: p,
    reason: 'owner',
    component: vm,
    owner: user.uid,
    mode: 0o755,
  });
  assert.match(
    err.message,
    new RegExp(
      `^--state: refusing '${p}': its directory '${vm}' is owned by uid ${user.uid} \\(mode 0755\\), not by root or uid 0`,
    ),
  );
  assert.match(err.message, fix);
  assert.doesNotMatch(err.message, /\n/, 'one line');

  const dir = tempDir(t, 'vtf-');
  const theirs = file(path.join(dir, 'theirs.json'), '{}', { uid: user.uid, mode: 0o644 });
  err = await untrusted(() => tf.readTrustedFile(theirs), { reason: 'owner', component: theirs, owner: user.uid });
  assert.match(err.message, new RegExp(`^refusing '${theirs}': it is owned by uid ${user.uid} \\(mode 0644\\)`));
  const fifo = path.join(dir, 'fifo');
  cp.execFileSync('mkfifo', [fifo]);
  err = await untrusted(() => tf.readTrustedFile(fifo, { what: '--state' }), { reason: 'type' });
  assert.match(err.message, /: it is a FIFO \(owner uid 0, mode 0644\), not a regular file\. Remove it/);
  const big = file(path.join(dir, 'big'), 'x'.repeat(70000));
  err = await untrusted(() => tf.readTrustedFile(big), { reason: 'size' });
  assert.match(err.message, /it holds 70000 bytes, more than the 65536/);
  assert.throws(
    () => tf.readTrustedFile(path.join(dir, 'none', 'x'), { what: '--state' }),
    (e) => {
      assert.equal(e.code, 'ENOENT');
      assert.equal(e.option, '--state', 'a missing directory is a SystemError of the option');
      return true;
    },
  );
});

// ---- the runtime directory, its key and its lock --------------------------------------------

/** Run runtime-dir-child.js (as `user` when given) to its end: its result lines. */
async function child(ops, { user, env = {} } = {}) {
  const args = [CHILD, JSON.stringify(ops)];
  const r = user
    ? await runAs(user, process.execPath, args, { env, timeoutMs: FAST_MS * 3 })
    : cp.spawnSync(process.execPath, args, { encoding: 'utf8', timeout: FAST_MS * 3, env: { ...process.env, ...env } });
  assert.equal(r.status ?? r.code, 0, `runtime-dir-child ${JSON.stringify(ops)}: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Start runtime-dir-child.js holding whatever `ops` took; resolves once it says it holds. Killed after t. */
async function holder(t, ops) {
  const proc = cp.spawn(process.execPath, [CHILD, JSON.stringify([...ops, { op: 'hold' }])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => proc.kill('SIGKILL'));
  const lines = [];
  let buf = '';
  await new Promise((resolve, reject) => {
    proc.on('exit', (code) => reject(new Error(`the holder exited (${code}) before it held: ${buf}`)));
    proc.stdout.on('data', (b) => {
      buf += b;
      while (buf.includes('\n')) {
        const line = JSON.parse(buf.slice(0, buf.indexOf('\n')));
        buf = buf.slice(buf.indexOf('\n') + 1);
        lines.push(line);
        if (line.ok === 'holding') resolve();
      }
    });
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return { proc, lines, exited };
}

test('runtime directory of root: /run/virtiofs-daemon, 0700; seal.key 0600 holds this boot’s id and one key for every process', async () => {
  requireRoot();
  const dir = rd.runtimeDir();
  assert.equal(dir, '/run/virtiofs-daemon');
  const st = fs.lstatSync(dir);
  assert.ok(st.isDirectory() && st.uid === 0 && (st.mode & 0o7777) === 0o700, `${dir}: uid ${st.uid} mode ${st.mode}`);
  const key = rd.sealKey();
  assert.equal(key.length, 32);
  const keyFile = path.join(dir, 'seal.key');
  const kst = fs.lstatSync(keyFile);
  assert.ok(kst.isFile() && kst.uid === 0 && (kst.mode & 0o7777) === 0o600, 'seal.key is root’s, 0600');
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const content = fs.readFileSync(keyFile);
  assert.equal(content.subarray(0, 37).toString(), `${boot}\n`, 'prefixed by the boot id');
  assert.ok(content.subarray(37).equals(key), 'the key itself follows');
  const others = await Promise.all([child([{ op: 'sealKey' }]), child([{ op: 'sealKey' }])]);
  for (const [line] of others) assert.equal(line.ok, key.toString('hex'), 'another process gets the same key');
  const copy = rd.sealKey();
  copy.fill(0);
  assert.ok(rd.sealKey().equals(key), 'a caller changing its copy changes nobody’s key');
});

test('adoption lock: of two processes one wins; status sees it held without taking it; it goes when its holder dies', async (t) => {
  requireRoot();
  const pid = sleeper(t).pid; // a pid no other test locks while it lives
  const first = await holder(t, [{ op: 'lock', pid }]);
  assert.deepEqual(first.lines[0], { ok: true }, 'the first process takes it');
  assert.equal(rd.lockDaemon(pid), false, 'the second loses');
  assert.equal(rd.daemonLockHeld(pid), true, 'and sees it held');
  assert.deepEqual(
    await child([
      { op: 'lock', pid },
      { op: 'held', pid },
    ]),
    [{ ok: false }, { ok: true }],
  );
  const other = sleeper(t).pid;
  assert.equal(rd.lockDaemon(other), true, 'another daemon’s lock is another byte');
  rd.unlockDaemon(other);

  first.proc.kill('SIGKILL');
  await first.exited;
  assert.equal(rd.daemonLockHeld(pid), false, 'gone with its holder');
  assert.equal(rd.lockDaemon(pid), true, 'free for the next manager');
  assert.equal(rd.lockDaemon(pid), false, 'taking it again while we hold it: refused (the daemon is managed here)');
  assert.equal(rd.daemonLockHeld(pid), true, 'held, by us');
  assert.deepEqual(
    await child([
      { op: 'lock', pid },
      { op: 'held', pid },
    ]),
    [{ ok: false }, { ok: true }],
  );
  rd.unlockDaemon(pid);
  assert.deepEqual(await child([{ op: 'lock', pid }]), [{ ok: true }], 'released by unlockDaemon');
  assert.throws(() => rd.lockDaemon(0), { code: 'ERR_INVALID_OPTION' }, 'byte 0 is no daemon’s');
});

test('adoption lock: two worker_threads are two holders; a terminated worker’s lock goes with it', async (t) => {
  requireRoot();
  const pid = sleeper(t).pid;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const rd = require(${JSON.stringify(path.join(DIST, 'process', 'runtime-dir.js'))});
    parentPort.on('message', (op) =>
      parentPort.postMessage(op === 'held' ? rd.daemonLockHeld(workerData.pid) : rd.lockDaemon(workerData.pid)));`;
  const start = () => {
    const w = new Worker(code, { eval: true, workerData: { pid } });
    t.after(() => w.terminate());
    const ask = (op) =>
      new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
        w.postMessage(op);
      });
    return { w, ask };
  };
  const [a, b] = [start(), start()];
  assert.equal(await a.ask('lock'), true, 'worker A takes it');
  assert.equal(await b.ask('lock'), false, 'worker B of the same process does not');
  assert.equal(await b.ask('held'), true, 'B sees it held');
  assert.equal(await a.ask('held'), true, 'A sees it held too: by itself');
  assert.equal(rd.lockDaemon(pid), false, 'nor does the main thread get it');
  await a.w.terminate();
  assert.equal(await b.ask('lock'), true, 'A’s lock went with A’s environment');
  assert.equal(rd.daemonLockHeld(pid), true, 'B holds it now');
  await b.w.terminate();
  assert.equal(rd.lockDaemon(pid), true);
  rd.unlockDaemon(pid);
});

/**
 * The /tmp fallback runtime directory of `user`, removed now and after t: a user that had this
 * uid before (useradd reuses the numbers of removed users) may have left one behind.
 */
function fallbackDir(t, user) {
  const dir = `/tmp/virtiofs-daemon-${user.uid}`;
  fs.rmSync(dir, { recursive: true, force: true });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('an unprivileged user can neither open adoption.lock nor read seal.key, and its locks never block root’s', async (t) => {
  requireRoot();
  const user = createUser(t);
  fallbackDir(t, user);
  const pid = sleeper(t).pid;
  rd.sealKey();
  assert.equal(rd.lockDaemon(pid), true);
  rd.unlockDaemon(pid);
  const dir = rd.runtimeDir();
  const probe = `
    const fs = require('node:fs');
    const out = {};
    for (const [file, flags] of [['adoption.lock', 'r'], ['adoption.lock', 'r+'], ['seal.key', 'r']]) {
      try { fs.closeSync(fs.openSync(${JSON.stringify(dir)} + '/' + file, flags)); out[file + ':' + flags] = 'opened'; }
      catch (err) { out[file + ':' + flags] = err.code; }
    }
    try { fs.readdirSync(${JSON.stringify(dir)}); out.list = 'listed'; } catch (err) { out.list = err.code; }
    process.stdout.write(JSON.stringify(out));`;
  const r = await runAs(user, process.execPath, ['-e', probe]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    'adoption.lock:r': 'EACCES',
    'adoption.lock:r+': 'EACCES',
    'seal.key:r': 'EACCES',
    list: 'EACCES',
  });
  // The user's own manager locks "the same daemon": in its own runtime directory, not in root's.
  const args = [CHILD, JSON.stringify([{ op: 'runtimeDir' }, { op: 'lock', pid }, { op: 'hold' }])];
  const [cmd, ...rest] = asUser(user, process.execPath, args);
  const held = cp.spawn(cmd, rest, { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => held.kill('SIGKILL'));
  const lines = await new Promise((resolve) => {
    let buf = '';
    held.stdout.on('data', (b) => {
      buf += b;
      if (buf.includes('holding'))
        resolve(
          buf
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l)),
        );
    });
  });
  assert.deepEqual(lines.slice(0, 2), [{ ok: `/tmp/virtiofs-daemon-${user.uid}` }, { ok: true }]);
  assert.equal(rd.daemonLockHeld(pid), false, 'root sees no holder');
  assert.equal(rd.lockDaemon(pid), true, 'root takes its lock while the user holds its own');
  rd.unlockDaemon(pid);
});

/** A user with an XDG_RUNTIME_DIR of its own (0700, under a 0755 root directory): { user, xdg, env }. */
function desktopUser(t) {
  const user = createUser(t);
  const xdg = mkdir(path.join(openDir(t), 'xdg'), { uid: user.uid, mode: 0o700 });
  fallbackDir(t, user);
  return { user, xdg, env: { XDG_RUNTIME_DIR: xdg } };
}

test('the runtime directory is refused when its owner or mode is wrong, or it is a symlink, and is never repaired', async (t) => {
  requireRoot();
  const { user, xdg, env } = desktopUser(t);
  const dir = path.join(xdg, 'virtiofs-daemon');
  const runtimeDir = async () => (await child([{ op: 'runtimeDir' }], { user, env }))[0];

  mkdir(dir, { uid: user.uid, mode: 0o755 });
  let r = await runtimeDir();
  assert.equal(r.error?.code, 'ERR_UNTRUSTED_FILE', JSON.stringify(r));
  assert.equal(r.error.reason, 'mode');
  assert.match(
    r.error.message,
    new RegExp(`^runtime directory: refusing '${dir}': it has mode 0755 \\(owner uid ${user.uid}\\)`),
  );
  assert.equal(fs.statSync(dir).mode & 0o7777, 0o755, 'not chmod’ed');
  fs.rmdirSync(dir);

  mkdir(dir, { uid: 0, mode: 0o700 });
  r = await runtimeDir();
  assert.deepEqual([r.error?.reason, r.error?.owner], ['owner', 0], JSON.stringify(r));
  assert.match(r.error.message, new RegExp(`is owned by uid 0 \\(mode 0700\\), not by uid ${user.uid}`));
  fs.rmdirSync(dir);

  const elsewhere = mkdir(path.join(xdg, 'elsewhere'), { uid: user.uid });
  fs.symlinkSync(elsewhere, dir);
  fs.lchownSync(dir, user.uid, user.gid);
  r = await runtimeDir();
  assert.deepEqual([r.error?.reason, r.error?.component], ['type', dir], JSON.stringify(r));
  fs.unlinkSync(dir);

  r = await runtimeDir();
  assert.equal(r.ok, dir, 'the control: $XDG_RUNTIME_DIR/virtiofs-daemon');
  const st = fs.lstatSync(dir);
  assert.ok(st.isDirectory() && st.uid === user.uid && (st.mode & 0o7777) === 0o700);

  // An XDG_RUNTIME_DIR that is not private is passed over (no /run/user/<uid> here): /tmp, where
  // another user has planted the name first.
  assert.ok(!fs.existsSync(`/run/user/${user.uid}`), `this test needs /run/user/${user.uid} not to exist`);
  fs.chmodSync(xdg, 0o755);
  const squatter = createUser(t);
  const planted = mkdir(`/tmp/virtiofs-daemon-${user.uid}`, { uid: squatter.uid });
  r = await runtimeDir();
  assert.deepEqual([r.error?.reason, r.error?.component, r.error?.owner], ['owner', planted, squatter.uid]);
  assert.equal(fs.statSync(planted).uid, squatter.uid, 'left alone');
  fs.rmdirSync(planted);
  assert.deepEqual(await runtimeDir(), { ok: planted }, 'the /tmp fallback, once nobody squats it');
});

test('seal key: racing processes all get one key; a key from another boot is replaced, this boot’s is kept', async (t) => {
  requireRoot();
  const { user, env } = desktopUser(t);
  const keyFile = path.join(env.XDG_RUNTIME_DIR, 'virtiofs-daemon', 'seal.key');
  const race = await Promise.all([1, 2, 3, 4, 5, 6].map(() => child([{ op: 'sealKey' }], { user, env })));
  const keys = new Set(race.map(([line]) => line.ok));
  assert.equal(keys.size, 1, `six processes at once, one key: ${JSON.stringify(race)}`);
  const [first] = keys;
  assert.match(first, /^[0-9a-f]{64}$/);
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const st = fs.lstatSync(keyFile);
  assert.ok(st.isFile() && st.uid === user.uid && (st.mode & 0o7777) === 0o600, 'the user’s, 0600');
  assert.equal(fs.readFileSync(keyFile).subarray(0, 37).toString(), `${boot}\n`);
  assert.deepEqual(fs.readdirSync(path.dirname(keyFile)).sort(), ['adoption.lock', 'seal.key'], 'nothing else left');

  // A key of another boot, as a reboot that kept the directory would leave it.
  const stale = crypto.randomBytes(32);
  file(keyFile, Buffer.concat([Buffer.from(`${crypto.randomUUID()}\n`), stale]), { uid: user.uid });
  const [again] = await child([{ op: 'sealKey' }], { user, env });
  assert.notEqual(again.ok, first);
  assert.notEqual(again.ok, stale.toString('hex'), 'not the other boot’s key');
  assert.equal(fs.readFileSync(keyFile).subarray(0, 37).toString(), `${boot}\n`, 'replaced by one of this boot');
  assert.deepEqual((await child([{ op: 'sealKey' }], { user, env }))[0], again, 'this boot’s key is kept');

  // A key file someone else could have written is not silently replaced either.
  fs.chmodSync(keyFile, 0o620);
  const [bad] = await child([{ op: 'sealKey' }], { user, env });
  assert.deepEqual([bad.error?.code, bad.error?.reason], ['ERR_UNTRUSTED_FILE', 'writable'], JSON.stringify(bad));
});

// ---- the CLI's state files under attack ------------------------------------------------------

/** A handle forged from the world-readable /proc facts of a root process (finding 1's recipe). */
function forgedHandle(pid, socket) {
  const st = h.procStat(pid);
  const exe = fs.statSync(`/proc/${pid}/exe`, { bigint: true });
  const sock = fs.statSync(socket, { bigint: true });
  return {
    format: HANDLE_FORMAT,
    kind: 'virtiofsd',
    pid,
    pgid: pid,
    startTime: st.starttime,
    bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    exe: { dev: String(exe.dev), ino: String(exe.ino) },
    argv: ['/usr/lib/qemu/virtiofsd'],
    lifetime: 'survive',
    sourcePath: '/',
    sockets: { socket: { path: socket, dev: String(sock.dev), ino: String(sock.ino) } },
    log: null,
    cgroup: null,
  };
}

test('attack: the VMM user owns the state file’s directory - run --detach refuses before anything starts; stop and status refuse its forged handle', async (t) => {
  requireRoot();
  const user = createUser(t);
  const base = openDir(t);
  const vm = mkdir(path.join(base, 'vm'), { uid: user.uid, mode: 0o755 });
  const work = tempDir(t, 'vtf-w-');
  const s = detached(t, work, { state: path.join(vm, 'state.json'), timeoutMs: START_MS });
  const r = await s.run();
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^virtiofs-daemon: --state: refusing '${s.state}': its directory '${vm}' is owned by uid ${user.uid} ` +
        `\\(mode 0755\\), not by root or uid 0.*Keep state files in a directory that only you \\(or root\\) can write`,
    ),
  );
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.deepEqual(fs.readdirSync(vm), [], 'nothing written');
  assert.equal(fs.existsSync(s.socket), false, 'no socket: no daemon was started');
  assert.deepEqual(processesOn(work), [], 'no daemon left running');

  // The user forges a handle naming a root process and a root service's socket (finding 1).
  const sentinel = sleeper(t);
  const service = native.listenUnix(path.join(work, 'service.sock'));
  t.after(() => native.closeFd(service.fd));
  const forged = JSON.stringify(forgedHandle(sentinel.pid, service.path));
  const w = await runAs(user, 'sh', ['-c', `cat > ${s.state}`], { input: forged });
  assert.equal(w.code, 0, w.stderr);
  for (const command of ['stop', 'status']) {
    const c = await cli([command, '--state', s.state], { timeoutMs: FAST_MS });
    assert.equal(c.code, 1, `${command}: ${c.stderr}`);
    assert.match(c.stderr, new RegExp(`^virtiofs-daemon: --state: refusing '${s.state}': its directory '${vm}'`));
    assert.equal(h.procStat(sentinel.pid)?.state !== 'Z' && sentinel.exitCode === null, true, `${command}: signalled`);
    assert.ok(fs.lstatSync(service.path).isSocket(), `${command}: the service's socket was unlinked`);
    assert.equal(fs.readFileSync(s.state, 'utf8'), forged, `${command}: the state file was touched`);
  }
  const logger = { info() {}, warn() {}, error() {}, debug() {} };
  await untrusted(() => lifetime.stopDetached(s.state, logger), { reason: 'owner', component: vm }, 'stopDetached');
  await untrusted(() => lifetime.statusDetached(s.state, process.stdout), { reason: 'owner' }, 'statusDetached');
  assert.equal(sentinel.exitCode, null, 'the sentinel was never signalled');
});

test('attack: 300 symlinks planted at every predictable temporary name and at the state file - no root file is ever touched', async (t) => {
  requireRoot();
  const user = createUser(t);
  const base = openDir(t);
  const v = victim(base);
  /**
   * Plant, as the user, symlinks to the victim at `.state.json.<pid>.tmp` for the next 300 pids
   * (and at `final`): one process, so that planting does not use up the pids it predicts.
   */
  const plant = async (dir, final) => {
    const planter = `
      const fs = require('node:fs');
      const next = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) + 1;
      for (let p = next; p < next + 300; p++) fs.symlinkSync(${JSON.stringify(v.file)}, ${JSON.stringify(dir)} + '/.state.json.' + p + '.tmp');
      if (${JSON.stringify(final)}) fs.symlinkSync(${JSON.stringify(v.file)}, ${JSON.stringify(final)});`;
    const r = await runAs(user, process.execPath, ['-e', planter]);
    assert.equal(r.code, 0, r.stderr);
    return fs.readdirSync(dir).sort();
  };
  // Directories root owns that the user can write: through its group, and sticky like /tmp.
  for (const [name, gid, mode, said] of [
    ['group-writable', user.gid, 0o775, /its directory '[^']+' is writable by others than its owner/],
    ['sticky', 0, 0o1777, new RegExp(`it belongs to uid ${user.uid} \\(mode 0777\\) in a sticky directory`)],
  ]) {
    const shared = mkdir(path.join(base, name), { gid, mode });
    const state = path.join(shared, 'state.json');
    const planted = await plant(shared, state);
    assert.equal(planted.length, 301);
    const work = tempDir(t, 'vtf-w-');
    const s = detached(t, work, { state, timeoutMs: START_MS });
    const r = await s.run();
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, said, name);
    for (const command of ['status', 'stop']) {
      const c = await cli([command, '--state', state], { timeoutMs: FAST_MS });
      assert.equal(c.code, 1, `${name} ${command}: ${c.stderr}`);
      assert.match(c.stderr, said, `${name} ${command}`);
    }
    v.assertUntouched(name);
    assert.deepEqual(fs.readdirSync(shared).sort(), planted, `${name}: nothing created, nothing replaced`);
    for (const entry of planted) assert.ok(fs.lstatSync(path.join(shared, entry)).isSymbolicLink(), entry);
    assert.deepEqual(processesOn(work), [], `${name}: no daemon left running`);
  }
  // Sticky, with only the temporary names planted: the random name misses them all, and the
  // legitimate run goes through - its state file root's own, nothing else changed.
  const sticky = mkdir(path.join(base, 'sticky-tmp-only'), { mode: 0o1777 });
  const planted = await plant(sticky, null);
  const work = tempDir(t, 'vtf-w-');
  const s = detached(t, work, { state: path.join(sticky, 'state.json'), timeoutMs: START_MS });
  const r = await s.run();
  assert.equal(r.code, 0, r.stderr);
  const st = fs.lstatSync(s.state);
  assert.ok(st.isFile() && st.uid === 0 && (st.mode & 0o7777) === 0o600, 'root’s own 0600 state file');
  assert.deepEqual(fs.readdirSync(sticky).sort(), [...planted, 'state.json'].sort(), 'no temporary file left');
  v.assertUntouched('sticky, temporary names only');
  const stop = await cli(['stop', '--state', s.state], { timeoutMs: START_MS });
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(fs.existsSync(s.state), false);
  v.assertUntouched('after stop');
});

test('attack: a state file that is a FIFO, a symlink to /dev/zero, 1 GiB, the user’s, or group-writable - status, stop and run --detach fail fast, typed, touching nothing', async (t) => {
  requireRoot();
  const user = createUser(t);
  const dir = tempDir(t, 'vtf-');
  const cases = [
    ['a FIFO', 'type', /it is a FIFO/, (p) => cp.execFileSync('mkfifo', [p])],
    ['a symlink to /dev/zero', 'type', /it is a symbolic link/, (p) => fs.symlinkSync('/dev/zero', p)],
    [
      'a 1 GiB sparse file',
      'size',
      /it holds 1073741824 bytes, more than the 65536/,
      (p) => (fs.writeFileSync(p, ''), fs.truncateSync(p, 2 ** 30)),
    ],
    ['the user’s file', 'owner', new RegExp(`it is owned by uid ${user.uid}`), (p) => file(p, '{}', { uid: user.uid })],
    [
      'a group-writable file',
      'writable',
      /it is writable by others than its owner/,
      (p) => file(p, '{}', { mode: 0o660 }),
    ],
  ];
  const logger = { info() {}, warn() {}, error() {}, debug() {} };
  const neverStarted = { start: () => assert.fail('run --detach started a daemon for an untrusted state file') };
  for (const [name, reason, said, make] of cases) {
    const state = path.join(dir, `${reason}-${cases.findIndex((c) => c[0] === name)}.json`);
    make(state);
    const before = fs.lstatSync(state);
    const work = tempDir(t, 'vtf-w-');
    const s = detached(t, work, { state, timeoutMs: FAST_MS });
    const runs = [
      ['status', () => cli(['status', '--state', state], { timeoutMs: FAST_MS, what: `status on ${name}` })],
      ['stop', () => cli(['stop', '--state', state], { timeoutMs: FAST_MS, what: `stop on ${name}` })],
      ['run --detach', () => s.run()],
    ];
    for (const [command, go] of runs) {
      const r = await go();
      assert.equal(r.code, 1, `${command} on ${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^virtiofs-daemon: --state: refusing '${state}': `), `${command} on ${name}`);
      assert.match(r.stderr, said, `${command} on ${name}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${command} on ${name}: one line`);
    }
    assert.equal(fs.existsSync(s.socket), false, `${name}: no daemon was started`);
    const after = fs.lstatSync(state);
    assert.deepEqual(
      [after.ino, after.mode, after.uid, after.size],
      [before.ino, before.mode, before.uid, before.size],
    );
    // The same, in-process, for the code.
    await untrusted(() => lifetime.statusDetached(state, process.stdout), { reason, path: state }, name);
    await untrusted(() => lifetime.stopDetached(state, logger), { reason, path: state }, name);
    await untrusted(() => lifetime.runDetached(neverStarted, state, logger), { reason, path: state }, name);
  }
});

test('control: a state file in a root-owned 0700 directory under /run, and in /tmp/<root-owned 0700 dir>/, works end to end', async (t) => {
  requireRoot();
  for (const dir of [runDir(t), tempDir(t, 'vtf-')]) {
    const s = detached(t, dir, { timeoutMs: START_MS });
    const r = await s.run();
    assert.equal(r.code, 0, `${dir}: ${r.stderr}`);
    const st = fs.lstatSync(s.state);
    assert.ok(st.isFile() && st.uid === 0 && (st.mode & 0o7777) === 0o600, `${dir}: root’s 0600 state file`);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['state.json', 'v.sock'], `${dir}: no temporary file left`);
    const hd = JSON.parse(fs.readFileSync(s.state, 'utf8'));
    const status = await cli(['status', '--state', s.state], { timeoutMs: FAST_MS });
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      new RegExp(
        `^running: virtiofsd pid ${hd.pid} \\(verified: sealed handle, our uid, its output pipe and sockets\\)`,
      ),
    );
    const stop = await cli(['stop', '--state', s.state], { timeoutMs: START_MS });
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(h.liveGroupMembers(hd.pgid), [], `${dir}: the daemon is gone`);
    assert.deepEqual(fs.readdirSync(dir), [], `${dir}: state file and socket removed`);
  }
});

'use strict';
/**
 * The socket primitives (src/process/native.ts over native/unix_socket.cc): listenUnix and the
 * life of the socket file - a stale file replaced, anything else at the path left alone, the
 * 107-byte limit, the bind without a thread - and chownToParent and unlinkSocket, which act
 * only on the socket we bound, never on what someone planted at its path since.
 *
 * Build first: npm run build (node-gyp rebuild, then tsc and the C helpers: node-gyp rebuild
 * empties build/, so the helpers come after it).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const u = require('./helpers/util.js');

u.requireProbe();
const native = require('../dist/process/native.js');
const { SystemError } = require('../dist/common/errors.js');

const { listenInTemp } = u;

/** Connect to the unix socket at p; resolve once connected (the backlog accepts for us). */
function connectTo(p) {
  return u.withTimeout(
    new Promise((resolve, reject) => {
      const c = net.connect(p);
      c.on('connect', () => {
        c.destroy();
        resolve();
      });
      c.on('error', reject);
    }),
    3000,
    `connecting to ${p}`,
  );
}

// ---- listenUnix --------------------------------------------------------------------------

test('listenUnix returns a blocking close-on-exec listening fd and the identity of its socket file', async (t) => {
  const sock = listenInTemp(t);
  const flags = u.fdFlags(sock.fd);
  assert.notEqual(flags & u.O_CLOEXEC, 0, 'the listening fd must be close-on-exec in the parent');
  assert.equal(flags & u.O_NONBLOCK, 0, 'the listening fd must be blocking');
  const st = fs.lstatSync(sock.path, { bigint: true });
  assert.ok(st.isSocket(), 'a socket file exists at the path');
  assert.equal(sock.ino, st.ino);
  assert.equal(sock.dev, st.dev);
  await connectTo(sock.path);
});

// ---- listenUnix edge cases ---------------------------------------------------------------

test('listenUnix replaces a stale socket file that nobody listens on', async (t) => {
  const p = path.join(u.tempDir(t), 'stale.sock');
  const old = native.listenUnix(p);
  native.closeFd(old.fd); // no unlink: the file stays, with no listener
  assert.ok(fs.lstatSync(p).isSocket(), 'setup: a stale socket file');
  const sock = native.listenUnix(p);
  t.after(() => native.closeFd(sock.fd));
  assert.equal(fs.lstatSync(p, { bigint: true }).ino, sock.ino);
  await connectTo(p);
});

/** Assert fn throws an Error whose code is one of codes and whose message names p. */
function assertListenRefused(fn, codes, p) {
  assert.throws(fn, (err) => {
    assert.ok(codes.includes(err.code), `code ${err.code} should be one of ${codes}: ${err.message}`);
    assert.ok(err.message.includes(p), `the message names ${p}: ${err.message}`);
    return true;
  });
}

test('listenUnix refuses a live listener with EADDRINUSE and leaves it working', async (t) => {
  const dir = u.tempDir(t);
  const p = path.join(dir, 'live.sock');
  const server = net.createServer((c) => c.destroy());
  await new Promise((resolve) => server.listen(p, resolve));
  t.after(() => server.close());
  const ino = fs.lstatSync(p).ino;
  assertListenRefused(() => native.listenUnix(p), ['EADDRINUSE'], p);
  assert.equal(fs.lstatSync(p).ino, ino, "the listener's socket file is untouched");
  await connectTo(p);

  const ourP = path.join(dir, 'ours.sock');
  const ours = native.listenUnix(ourP);
  t.after(() => native.closeFd(ours.fd));
  assertListenRefused(() => native.listenUnix(ourP), ['EADDRINUSE'], ourP);
  await connectTo(ourP);
});

const NOT_A_SOCKET = ['EEXIST', 'ENOTSOCK', 'EADDRINUSE'];

test('listenUnix leaves a regular file at the path alone', (t) => {
  const p = path.join(u.tempDir(t), 'file');
  fs.writeFileSync(p, 'precious');
  const ino = fs.lstatSync(p).ino;
  assertListenRefused(() => native.listenUnix(p), NOT_A_SOCKET, p);
  assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
  assert.equal(fs.lstatSync(p).ino, ino);
});

test('listenUnix leaves a directory at the path alone', (t) => {
  const p = path.join(u.tempDir(t), 'dir');
  fs.mkdirSync(p);
  fs.writeFileSync(path.join(p, 'inside'), 'x');
  assertListenRefused(() => native.listenUnix(p), NOT_A_SOCKET, p);
  assert.ok(fs.lstatSync(p).isDirectory());
  assert.equal(fs.readFileSync(path.join(p, 'inside'), 'utf8'), 'x');
});

test('listenUnix leaves a symlink at the path alone and does not follow it, even to a stale socket', (t) => {
  const dir = u.tempDir(t);
  const target = path.join(dir, 'target.sock');
  const stale = native.listenUnix(target);
  native.closeFd(stale.fd);
  const p = path.join(dir, 'link.sock');
  fs.symlinkSync(target, p);
  assertListenRefused(() => native.listenUnix(p), NOT_A_SOCKET, p);
  assert.ok(fs.lstatSync(p).isSymbolicLink(), 'the symlink is still there');
  assert.equal(fs.readlinkSync(p), target);
  assert.equal(fs.lstatSync(target, { bigint: true }).ino, stale.ino, 'its target is untouched');

  const fileTarget = path.join(dir, 'file');
  fs.writeFileSync(fileTarget, 'precious');
  const p2 = path.join(dir, 'link2.sock');
  fs.symlinkSync(fileTarget, p2);
  assertListenRefused(() => native.listenUnix(p2), NOT_A_SOCKET, p2);
  assert.equal(fs.readlinkSync(p2), fileTarget);
  assert.equal(fs.readFileSync(fileTarget, 'utf8'), 'precious');
});

test('listenUnix in a missing directory throws ENOENT naming the directory', (t) => {
  const missing = path.join(u.tempDir(t), 'no-such-dir');
  const p = path.join(missing, 'x.sock');
  assert.throws(
    () => native.listenUnix(p),
    (err) => {
      assert.equal(err.code, 'ENOENT');
      assert.ok(err.message.includes(missing), `the message names ${missing}: ${err.message}`);
      return true;
    },
  );
  assert.equal(fs.existsSync(missing), false);
});

/** A path under dir of exactly `bytes` UTF-8 bytes, made of `unit` then 'a's. */
function pathOfBytes(dir, bytes, unit = '') {
  const head = `${dir}/${unit}`;
  const p = head + 'a'.repeat(bytes - Buffer.byteLength(head));
  assert.equal(Buffer.byteLength(p), bytes);
  return p;
}

test('listenUnix refuses a path of 108 bytes or more with ENAMETOOLONG naming the 107-byte limit', (t) => {
  const dir = u.tempDir(t);
  const multibyte = pathOfBytes(dir, 108, 'é'.repeat(10));
  assert.ok(multibyte.length < 108, 'setup: fewer than 108 characters');
  for (const p of [pathOfBytes(dir, 108), multibyte, pathOfBytes(dir, 200)]) {
    assert.throws(
      () => native.listenUnix(p),
      (err) => {
        assert.equal(err.code, 'ENAMETOOLONG', `${Buffer.byteLength(p)}-byte path: ${err.message}`);
        assert.ok(err.message.includes('107'), `the message names the limit: ${err.message}`);
        return true;
      },
    );
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was created (no truncated path)');
});

test('listenUnix binds a path of exactly 107 bytes, untruncated', async (t) => {
  const p = pathOfBytes(u.tempDir(t), 107);
  const sock = native.listenUnix(p);
  t.after(() => native.closeFd(sock.fd));
  assert.equal(fs.lstatSync(p, { bigint: true }).ino, sock.ino);
  const { report } = await u.runProbe({ fds: ['null', 'null', 'null', sock.fd] });
  assert.equal(
    report.fd3.sockName.replace(/^\/proc\/self\/fd\/\d+\//, ''),
    path.basename(p),
    'the address holds the whole name, not truncated',
  );
  await connectTo(p);
});

/**
 * Run `body` (JavaScript, with `native`, `fs`, `path` and `dir` in scope) in a fresh Node under
 * `strace -f`, between two markers (kill(pid, 0)). Returns the clone/clone3 calls any thread of
 * the process made between the markers, and what body printed on stdout.
 */
function clonesAround(t, dir, body) {
  const trace = path.join(dir, 'strace.out');
  const script =
    `const native = require(${JSON.stringify(path.resolve(__dirname, '../dist/process/native.js'))});` +
    `const fs = require('node:fs'); const path = require('node:path'); const dir = ${JSON.stringify(dir)};` +
    // Everything lazily made (the addon, its per-environment state) is made before the first marker.
    `native.closeFd(native.listenUnix(path.join(dir, 'warm.sock')).fd);` +
    `process.kill(process.pid, 0); ${body}; process.kill(process.pid, 0);`;
  const r = cp.spawnSync(
    'strace',
    ['-f', '-qq', '-e', 'trace=clone,clone3,kill', '-o', trace, process.execPath, '-e', script],
    {
      encoding: 'utf8',
      timeout: 60000,
    },
  );
  assert.equal(r.status, 0, `strace node exited ${r.status}/${r.signal} (is strace installed?): ${r.stderr}`);
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const marks = lines.map((l, i) => (/\bkill\(\d+, 0\)/.test(l) ? i : -1)).filter((i) => i >= 0);
  assert.equal(marks.length, 2, `two markers in the trace:\n${lines.join('\n')}`);
  const between = lines.slice(marks[0] + 1, marks[1]);
  return {
    clones: between.filter((l) => /\bclone3?\(/.test(l)),
    threads: between.filter((l) => /CLONE_THREAD/.test(l)),
    stdout: r.stdout,
  };
}

test('listenUnix creates no thread where /proc is procfs: the bind goes through /proc/self/fd/<dirfd>/<name>', (t) => {
  const dir = u.tempDir(t);
  const { clones, stdout } = clonesAround(
    t,
    dir,
    `const out = [];
     for (let i = 0; i < 20; i++) {
       const s = native.listenUnix(path.join(dir, 's' + i + '.sock'), { chownTo: 'parent' });
       out.push(fs.lstatSync(s.path, { bigint: true }).ino === s.ino && fs.lstatSync(s.path).isSocket());
       native.unlinkSocket(s);
       native.closeFd(s.fd);
     }
     console.log(JSON.stringify(out));`,
  );
  assert.deepEqual(JSON.parse(stdout), new Array(20).fill(true), 'each listen bound its socket file at its path');
  assert.deepEqual(clones, [], 'no clone or clone3 between the markers: no thread, no process');
});

test('listenUnix falls back to a thread when /proc/self/fd/<n>/<name> does not fit 107 bytes but the path does', (t) => {
  // A short directory, so that its path plus the name fits where the magic path cannot:
  // "/proc/self/fd/NN/" is 17 bytes or more, "/tmp/vXXXXXX/" 13.
  const dir = fs.mkdtempSync('/tmp/v');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const name = 'n'.repeat(107 - dir.length - 1);
  assert.ok(dir.length + 1 < 17, `setup: '${dir}' must be shorter than the magic prefix`);
  const { threads, clones, stdout } = clonesAround(
    t,
    dir,
    `const out = [];
     for (let i = 0; i < 5; i++) {
       const s = native.listenUnix(path.join(dir, ${JSON.stringify(name)}));
       out.push(fs.lstatSync(s.path, { bigint: true }).ino === s.ino);
       native.unlinkSocket(s);
       native.closeFd(s.fd);
     }
     console.log(JSON.stringify(out));`,
  );
  assert.deepEqual(JSON.parse(stdout), [true, true, true, true, true], 'each listen bound the 107-byte path');
  // The thread the fallback needs, and nothing else: the strace of the test above can see threads.
  assert.equal(threads.length, 5, `one thread per listen:\n${clones.join('\n')}`);
  assert.equal(clones.length, 5, `no other clone:\n${clones.join('\n')}`);
});

// ---- chownToParent -----------------------------------------------------------------------

/** A directory owned by 65534:65534 with our socket in it. Needs root. */
function socketInForeignDir(t) {
  assert.equal(process.getuid(), 0, 'these tests chown files: run them as root');
  const base = u.tempDir(t);
  const dir = path.join(base, 'owned');
  fs.mkdirSync(dir);
  fs.chownSync(dir, 65534, 65534);
  const sock = native.listenUnix(path.join(dir, 'd.sock'));
  t.after(() => native.closeFd(sock.fd));
  const victim = path.join(base, 'victim');
  fs.writeFileSync(victim, 'root owned');
  return { sock, victim };
}

/** Assert fn throws a SystemError whose code is an errno name (users branch on it) and which names p. */
function assertRefused(fn, p) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof SystemError, `a SystemError, got ${err && err.constructor.name}: ${err}`);
    assert.match(String(err.code), /^E[A-Z0-9]+$/, `code must be an errno name: ${err.message}`);
    assert.ok(err.message.includes(p), `the message names ${p}: ${err.message}`);
    return true;
  });
}

/** uid and gid of p itself (not of a symlink's target). */
function owner(p) {
  const st = fs.lstatSync(p);
  return { uid: st.uid, gid: st.gid };
}

test("chownToParent gives the socket file to its directory's owner", (t) => {
  const { sock } = socketInForeignDir(t);
  assert.deepEqual(owner(sock.path), { uid: 0, gid: 0 }, 'setup: the socket starts out ours');
  assert.deepEqual(native.chownToParent(sock), { uid: 65534, gid: 65534 });
  assert.deepEqual(owner(sock.path), { uid: 65534, gid: 65534 });
});

test("listenUnix with chownTo: 'parent' gives the socket file to its directory's owner in the same call", (t) => {
  assert.equal(process.getuid(), 0, 'this test chowns files: run it as root');
  const dir = path.join(u.tempDir(t), 'owned');
  fs.mkdirSync(dir);
  fs.chownSync(dir, 65534, 65534);
  const sock = native.listenUnix(path.join(dir, 'd.sock'), { chownTo: 'parent' });
  t.after(() => native.closeFd(sock.fd));
  assert.deepEqual(sock.owner, { uid: 65534, gid: 65534 });
  assert.deepEqual(owner(sock.path), { uid: 65534, gid: 65534 });
  const mine = native.listenUnix(path.join(dir, 'e.sock'), { chownTo: null });
  t.after(() => native.closeFd(mine.fd));
  assert.equal(mine.owner, undefined, 'no chown asked: no owner given');
  assert.deepEqual(owner(mine.path), { uid: 0, gid: 0 });
  assert.throws(() => native.listenUnix(path.join(dir, 'f.sock'), { chownTo: 'child' }), {
    code: 'ERR_INVALID_OPTION',
  });
  assert.ok(!fs.existsSync(path.join(dir, 'f.sock')), 'a refused option creates nothing');
});

test('chownToParent refuses a symlink planted at the path and leaves it and its target alone', (t) => {
  const { sock, victim } = socketInForeignDir(t);
  fs.unlinkSync(sock.path);
  fs.symlinkSync(victim, sock.path);
  assertRefused(() => native.chownToParent(sock), sock.path);
  assert.deepEqual(owner(victim), { uid: 0, gid: 0 }, 'the victim keeps its owner');
  assert.deepEqual(owner(sock.path), { uid: 0, gid: 0 }, 'the symlink keeps its owner');
});

test('chownToParent refuses a hard link to another file planted at the path', (t) => {
  const { sock, victim } = socketInForeignDir(t);
  fs.unlinkSync(sock.path);
  fs.linkSync(victim, sock.path);
  assertRefused(() => native.chownToParent(sock), sock.path);
  assert.deepEqual(owner(victim), { uid: 0, gid: 0 }, 'the victim keeps its owner');
});

test('chownToParent refuses a different socket bound at the path since', (t) => {
  const { sock } = socketInForeignDir(t);
  fs.unlinkSync(sock.path);
  const other = native.listenUnix(sock.path);
  t.after(() => native.closeFd(other.fd));
  assertRefused(() => native.chownToParent(sock), sock.path);
  assert.deepEqual(owner(sock.path), { uid: 0, gid: 0 }, 'the other socket keeps its owner');
  assert.equal(fs.lstatSync(sock.path, { bigint: true }).ino, other.ino);
});

// ---- unlinkSocket ------------------------------------------------------------------------

test('unlinkSocket removes our socket file and returns true; false once it is gone', (t) => {
  const p = path.join(u.tempDir(t), 'mine.sock');
  const sock = native.listenUnix(p);
  t.after(() => native.closeFd(sock.fd));
  assert.equal(native.unlinkSocket(sock), true);
  assert.equal(fs.existsSync(p), false);
  assert.equal(native.unlinkSocket(sock), false);
});

test('unlinkSocket refuses an identity that does not fit 64 unsigned bits, and removes nothing', (t) => {
  const p = path.join(u.tempDir(t), 'wide.sock');
  const sock = native.listenUnix(p);
  t.after(() => native.closeFd(sock.fd));
  // -1n would wrap to 2**64-1, and 2**64 + ino to ino itself: the file's identity, by accident.
  for (const bad of [{ ino: -1n }, { ino: 2n ** 64n + sock.ino }, { dev: 2n ** 64n + sock.dev }]) {
    assert.throws(
      () => native.unlinkSocket({ ...sock, ...bad }),
      (err) => err instanceof RangeError && /64 unsigned bits/.test(err.message),
    );
    assert.equal(fs.existsSync(p), true, 'the socket is still there');
  }
  assert.equal(native.unlinkSocket(sock), true);
});

test('unlinkSocket leaves a socket re-bound at the path, or a file put there, and returns false', (t) => {
  const p = path.join(u.tempDir(t), 'shared.sock');
  const first = native.listenUnix(p);
  t.after(() => native.closeFd(first.fd));
  fs.unlinkSync(p);
  const second = native.listenUnix(p);
  t.after(() => native.closeFd(second.fd));
  assert.equal(native.unlinkSocket(first), false);
  assert.equal(fs.lstatSync(p, { bigint: true }).ino, second.ino, 'the new socket is still there');

  fs.unlinkSync(p);
  fs.writeFileSync(p, 'precious');
  assert.equal(native.unlinkSocket(second), false);
  assert.equal(fs.readFileSync(p, 'utf8'), 'precious');
});

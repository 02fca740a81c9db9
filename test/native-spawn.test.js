'use strict';
/**
 * What a spawned child starts with (src/process/native.ts over native/spawn.cc), checked from
 * the outside: a C probe (test/helpers/probe.c) spawned as the "daemon" reports the fd table,
 * the socket at fd 3, its environment, working directory and signal state; and an exec that
 * fails throws at once and leaves nothing behind.
 *
 * Build first: npm run build (node-gyp rebuild, then tsc and the C helpers: node-gyp rebuild
 * empties build/, so the helpers come after it).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const u = require('./helpers/util.js');

u.requireProbe();
const native = require('../dist/process/native.js');
const { SystemError } = require('../dist/common/errors.js');

const { listenInTemp, runInner, sleep, tick } = u;
const SIGNALS = os.constants.signals;

/** The fd numbers of a probe report. */
function fdNumbers(report) {
  return report.fds.map((f) => f.fd);
}

/** The report's entry for fd n. */
function fdEntry(report, n) {
  return report.fds.find((f) => f.fd === n);
}

/** The signal numbers set in a hex mask from /proc/<pid>/status. */
function signalsIn(hex) {
  const mask = BigInt(`0x${hex}`);
  const out = [];
  for (let s = 1; s <= 64; s++) if (mask & u.sigBit(s)) out.push(s);
  return out;
}

// ---- fds, env and cwd --------------------------------------------------------------------

test('the child gets the socket at fd 3: listening, bound to the path, blocking, not close-on-exec', async (t) => {
  const sock = listenInTemp(t);
  const { report, exit } = await u.runProbe({ fds: ['null', 'null', 'null', sock.fd] });
  assert.deepEqual(exit, { code: 0, signal: null, coreDumped: false });
  assert.deepEqual(fdNumbers(report), [0, 1, 2, 3]);
  const fd3 = fdEntry(report, 3);
  assert.equal(fd3.type, 'socket');
  assert.equal(fd3.inode, fs.fstatSync(sock.fd).ino, 'fd 3 is our socket (same sockfs inode)');
  assert.equal(fd3.cloexec, 0, 'FD_CLOEXEC must be cleared on the child fd 3');
  assert.equal(report.fd3.acceptConn, 1, 'SO_ACCEPTCONN: fd 3 is listening');
  assert.equal(report.fd3.soType, 1, 'SO_TYPE: SOCK_STREAM');
  assert.equal(report.fd3.nonblock, 0, 'fd 3 is blocking');
  // Bound through its pinned directory's magic link (no path is resolved twice, no thread): the
  // address is that link's path, ending in the file's name (see BindAt in unix_socket.cc).
  assert.match(report.fd3.sockName, new RegExp(`^/proc/self/fd/\\d+/${path.basename(sock.path)}$`));
  for (const n of [0, 1, 2]) assert.equal(fdEntry(report, n).type, 'chr', `fd ${n} is /dev/null`);
  assert.notEqual(u.fdFlags(sock.fd) & u.O_CLOEXEC, 0, 'the parent fd stays close-on-exec');
});

test("the child's fd table is exactly {0,1,2,3} while the parent holds 200 fds without close-on-exec, some above 1024", (t) => {
  const dir = u.tempDir(t);
  const file = fs.openSync(path.join(dir, 'filler'), 'w');
  const devNull = fs.openSync('/dev/null', 'r');
  t.after(() => {
    fs.closeSync(file);
    fs.closeSync(devNull);
  });
  // Node opens everything close-on-exec. The inner Node process gets these as stdio
  // entries, which libuv dup2()s into place without the flag; unlisted entries stay closed.
  // At startup Node (uv_disable_stdio_inheritance) marks fds 0-15 close-on-exec, and the
  // ones after them up to the first closed fd: hence the gap below 40.
  const leakAt = [];
  for (let fd = 40; fd < 190; fd++) leakAt.push(fd);
  for (let fd = 1030; fd < 1080; fd++) leakAt.push(fd);
  const stdio = new Array(1080).fill('ignore');
  stdio[2] = 'pipe';
  leakAt.forEach((fd, k) => {
    stdio[fd] = k % 2 ? file : devNull;
  });

  const r = runInner(t, 'leak', { socket: path.join(dir, 'leak.sock'), report: path.join(dir, 'report.json') }, stdio);
  const missing = leakAt.filter((fd) => !r.leaky.includes(fd));
  assert.deepEqual(missing, [], 'setup: these fds should be open without O_CLOEXEC in the spawning process');
  assert.ok(r.leaky.length >= 200 && r.leaky.some((fd) => fd > 1024));
  assert.deepEqual(r.exit, { code: 0, signal: null, coreDumped: false });
  assert.deepEqual(fdNumbers(r.report), [0, 1, 2, 3], 'nothing but fds 0-3 reaches the child');
  assert.equal(fdEntry(r.report, 3).type, 'socket');
  assert.equal(r.report.fd3.acceptConn, 1);
});

test('fd placement is exact when sources sit on target numbers: swaps, fd 3 already in place (close-on-exec), socket at fd 0', (t) => {
  const dir = u.tempDir(t);
  const open = (name) => {
    const fd = fs.openSync(path.join(dir, name), 'w+');
    t.after(() => fs.closeSync(fd));
    return fd;
  };
  // The inner process starts with distinct files at 0, 1, 3, 4, 5.
  const stdio = [open('a'), open('b'), 'pipe', open('c'), open('d'), open('e')];
  const r = runInner(
    t,
    'collide',
    {
      socket3: path.join(dir, 's3.sock'),
      socket0: path.join(dir, 's0.sock'),
      report1: path.join(dir, 'r1.json'),
      report2: path.join(dir, 'r2.json'),
    },
    stdio,
  );
  assert.equal(r.sock3.fd, 3, 'setup: the socket should be created at fd 3');
  assert.equal(r.sock3.cloexec, true, 'setup: the socket at fd 3 should be close-on-exec');
  assert.equal(r.sock0.fd, 0, 'setup: the second socket should be created at fd 0');

  // fds: [1, 0, 'null', 3, 5, 4]
  const s = r.swapped;
  assert.deepEqual(s.exit, { code: 0, signal: null, coreDumped: false });
  assert.deepEqual(fdNumbers(s.report), [0, 1, 2, 3, 4, 5]);
  const ino = (n) => fdEntry(s.report, n).inode;
  assert.equal(ino(0), r.parent[1], 'child fd 0 is the parent fd 1');
  assert.equal(ino(1), r.parent[0], 'child fd 1 is the parent fd 0');
  assert.equal(fdEntry(s.report, 2).type, 'chr', 'child fd 2 is /dev/null');
  assert.equal(ino(3), r.sock3.sockIno, 'child fd 3 is the socket that sat at fd 3');
  assert.equal(fdEntry(s.report, 3).cloexec, 0, 'close-on-exec cleared although source and target were both 3');
  assert.equal(s.report.fd3.acceptConn, 1);
  assert.equal(ino(4), r.parent[5], 'child fd 4 is the parent fd 5');
  assert.equal(ino(5), r.parent[4], 'child fd 5 is the parent fd 4');

  // fds: ['null', 'null', 'null', 0] with the socket at fd 0
  const z = r.atZero;
  assert.deepEqual(z.exit, { code: 0, signal: null, coreDumped: false });
  assert.deepEqual(fdNumbers(z.report), [0, 1, 2, 3]);
  assert.equal(fdEntry(z.report, 0).type, 'chr', 'child fd 0 is /dev/null, not the socket');
  assert.equal(fdEntry(z.report, 3).inode, r.sock0.sockIno, 'child fd 3 is the socket that sat at fd 0');
  assert.equal(z.report.fd3.acceptConn, 1);
  assert.match(z.report.fd3.sockName, /^\/proc\/self\/fd\/\d+\/s0\.sock$/, 'the socket bound as s0.sock');
});

test("fd sources 'pipe', 'pipe-in', 'null' and null give exactly those fds; parent pipe ends are non-blocking and close-on-exec", async () => {
  let pipes;
  const stderrText = [];
  let stderrDone;
  const { report, exit } = await u.runProbe({
    fds: ['pipe-in', 'pipe', 'pipe', null, 'null'],
    args: ['--write-stderr', 'hello from fd 2'],
    onSpawn: (child) => {
      pipes = [...child.pipes];
      const err = new net.Socket({ fd: child.pipes[2], readable: true, writable: false });
      stderrDone = new Promise((resolve, reject) => {
        err.on('data', (d) => stderrText.push(d.toString()));
        err.on('end', resolve);
        err.on('error', reject);
      });
      const out = new net.Socket({ fd: child.pipes[1], readable: true, writable: false });
      out.resume();
    },
  });
  assert.deepEqual(exit, { code: 0, signal: null, coreDumped: false });
  assert.equal(pipes.length, 5);
  assert.ok(
    pipes.slice(0, 3).every((fd) => Number.isInteger(fd) && fd > 2),
    `pipes ${pipes}`,
  );
  assert.equal(pipes[3], null);
  assert.equal(pipes[4], null);
  const O_ACCMODE = 3;
  assert.equal(u.fdFlags(pipes[0]) & O_ACCMODE, 1, "'pipe-in': our end is the write end");
  native.closeFd(pipes[0]);
  await u.withTimeout(stderrDone, 3000, 'EOF on the stderr pipe');
  assert.equal(stderrText.join(''), 'hello from fd 2');

  assert.deepEqual(fdNumbers(report), [0, 1, 2, 4], 'fd 3 (null) is closed');
  assert.deepEqual(
    report.fds.map((f) => f.type),
    ['pipe', 'pipe', 'pipe', 'chr'],
  );
  assert.equal(report.fd3, null);
});

test('parent pipe ends of a running child are non-blocking and close-on-exec', async () => {
  let flags;
  await u.runProbe({
    fds: ['pipe-in', 'pipe', 'pipe'],
    args: ['--wait'],
    onSpawn: (child) => {
      flags = child.pipes.map((fd) => u.fdFlags(fd));
      child.signal('SIGKILL');
      for (const fd of child.pipes) native.closeFd(fd);
    },
  });
  for (const [i, f] of flags.entries()) {
    assert.notEqual(f & u.O_NONBLOCK, 0, `pipes[${i}] is non-blocking`);
    assert.notEqual(f & u.O_CLOEXEC, 0, `pipes[${i}] is close-on-exec`);
  }
  assert.equal(flags[1] & 3, 0, "'pipe': our end is the read end");
});

test('env and cwd reach the child exactly; the default env is ours', async (t) => {
  const dir = u.tempDir(t);
  const given = await u.runProbe({ env: ['A=1', 'B=two words', 'EMPTY='], cwd: dir });
  assert.deepEqual(given.report.env, ['A=1', 'B=two words', 'EMPTY=']);
  assert.equal(given.report.cwd, fs.realpathSync(dir));

  const fromObject = await u.runProbe({ env: { X: 'y' } });
  assert.deepEqual(fromObject.report.env, ['X=y']);

  const inherited = await u.runProbe();
  const ours = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
  assert.deepEqual([...inherited.report.env].sort(), ours.sort());
  assert.equal(inherited.report.cwd, process.cwd());
});

// ---- signal state ------------------------------------------------------------------------

test("the child's signal mask is empty and no signal is ignored, although Node ignores SIGPIPE and SIGXFSZ here", async () => {
  const parentIgnored = u.statusMask('SigIgn');
  assert.notEqual(parentIgnored & u.sigBit(SIGNALS.SIGPIPE), 0n, 'setup: this process ignores SIGPIPE');
  assert.notEqual(parentIgnored & u.sigBit(SIGNALS.SIGXFSZ), 0n, 'setup: this process ignores SIGXFSZ');
  const { report } = await u.runProbe();
  assert.deepEqual(signalsIn(report.sigBlk), [], `blocked in the child (SigBlk ${report.sigBlk})`);
  assert.deepEqual(signalsIn(report.sigIgn), [], `ignored in the child (SigIgn ${report.sigIgn})`);
});

// ---- exec failures -----------------------------------------------------------------------

const execFailures = [
  { name: 'a missing file', code: 'ENOENT', make: (dir) => path.join(dir, 'no-such-program') },
  {
    name: 'a file without execute permission',
    code: 'EACCES',
    make: (dir) => {
      const f = path.join(dir, 'not-executable');
      fs.writeFileSync(f, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
      return f;
    },
  },
  { name: 'a directory', code: 'EACCES', make: (dir) => dir },
  {
    name: 'an executable file with garbage contents',
    code: 'ENOEXEC',
    make: (dir) => {
      const f = path.join(dir, 'garbage');
      fs.writeFileSync(f, Buffer.from([0x00, 0x01, 0x02, 0xff, 0x10, 0x42, 0x0a, 0x7f, 0x00]), { mode: 0o755 });
      return f;
    },
  },
];

for (const { name, code, make } of execFailures) {
  test(`spawning ${name} throws ${code} synchronously, never calls onExit and leaves no zombie`, async (t) => {
    const file = make(u.tempDir(t));
    let calls = 0;
    assert.throws(
      () => native.spawn({ file, argv: [file], fds: ['null', 'null', 'null'], onExit: () => calls++ }),
      (err) => {
        assert.ok(err instanceof SystemError, `a SystemError, got ${err && err.constructor.name}: ${err}`);
        assert.equal(err.code, code);
        assert.equal(err.errno, -os.constants.errno[code]);
        assert.equal(typeof err.syscall, 'string');
        assert.ok(err.syscall.length > 0, 'syscall is set');
        assert.equal(err.path, file);
        assert.ok(err.message.includes(file), `the message names the file: ${err.message}`);
        return true;
      },
    );
    await sleep(100);
    await tick();
    assert.equal(calls, 0, 'onExit must not be called for a spawn that threw');
    assert.deepEqual(u.zombieChildren(), [], 'no zombie child of ours is left');
  });
}

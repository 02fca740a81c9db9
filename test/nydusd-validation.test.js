'use strict';
/**
 * Nydusd's validation (src/nydusd.ts): every bad option is an InvalidOptionError before anything
 * is created or run; start while running; and what is at the socket paths before start (stale
 * sockets replaced, a regular file or a live listener refused and left alone).
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-validation.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const { DaemonRunningError, InvalidOptionError, VirtiofsDaemonError } = require('../dist/index.js');
const { exists, isSocket, rejection, script } = require('./helpers/util.js');
const {
  DAEMON,
  REAL,
  assertNothingLeft,
  assertSocketsGone,
  staleSocket,
  test,
  tryConnect,
  world,
} = require('./helpers/nydusd.js');

// ---------------------------------------------------------------------------------------------
// Validation

describe('validation: InvalidOptionError before anything is created', () => {
  const longSock = (dir, bytes) => path.join(dir, 'x'.repeat(bytes - dir.length - 1));

  const cases = [
    ['empty sockPath', () => ({ sockPath: '' }), 'sockPath'],
    ['sockPath not given', () => ({ sockPath: undefined }), 'sockPath'],
    ['empty apiSockPath', () => ({ apiSockPath: '' }), 'apiSockPath'],
    ['apiSockPath not given', () => ({ apiSockPath: undefined }), 'apiSockPath'],
    ['empty sourcePath', () => ({ sourcePath: '' }), 'sourcePath'],
    ['sourcePath not given', () => ({ sourcePath: undefined }), 'sourcePath'],
    ['empty path (binary)', () => ({ path: '' }), 'path'],
    ['binary missing', (w) => ({ path: path.join(w.dir, 'no-such-nydusd') }), 'path'],
    ['binary not executable', (w) => ({ path: w.notExec }), 'path'],
    ['binary is a directory', (w) => ({ path: w.dir }), 'path'],
    ['source missing', (w) => ({ sourcePath: path.join(w.dir, 'no-such-dir') }), 'sourcePath'],
    ['source is a file', (w) => ({ sourcePath: w.file }), 'sourcePath'],
    ['sockPath directory missing', (w) => ({ sockPath: path.join(w.dir, 'no-such-dir', 'v.sock') }), 'sockPath'],
    [
      'apiSockPath directory missing',
      (w) => ({ apiSockPath: path.join(w.dir, 'no-such-dir', 'a.sock') }),
      'apiSockPath',
    ],
    ['sockPath directory is a file', (w) => ({ sockPath: path.join(w.file, 'v.sock') }), 'sockPath'],
    ['sockPath == apiSockPath', (w) => ({ apiSockPath: w.sockPath }), /^(sockPath|apiSockPath)$/],
    // The same file spelt differently: nydusd would bind the API over its own vhost-user socket.
    [
      'apiSockPath names the same file as sockPath (<dir>/./v.sock)',
      (w) => ({ apiSockPath: `${w.dir}/./v.sock` }),
      /^(sockPath|apiSockPath)$/,
    ],
    [
      'apiSockPath names the same file as sockPath (<dir>//v.sock)',
      (w) => ({ apiSockPath: `${w.dir}//v.sock` }),
      /^(sockPath|apiSockPath)$/,
    ],
    ['sockPath of 108 bytes', (w) => ({ sockPath: longSock(w.dir, 108) }), 'sockPath'],
    ['apiSockPath of 108 bytes', (w) => ({ apiSockPath: longSock(w.dir, 108) }), 'apiSockPath'],
    ['NUL byte in path', (w) => ({ path: `${w.wrapper}\0x` }), 'path'],
    ['NUL byte in sockPath', (w) => ({ sockPath: `${w.sockPath}\0x` }), 'sockPath'],
    ['NUL byte in apiSockPath', (w) => ({ apiSockPath: `${w.apiSockPath}\0x` }), 'apiSockPath'],
    ['NUL byte in sourcePath', (w) => ({ sourcePath: `${w.share}\0x` }), 'sourcePath'],
    ['NUL byte in extraArgs[1]', () => ({ extraArgs: ['--rlimit-nofile', '0\0'] }), 'extraArgs[1]'],
    ['extraArgs not an array', () => ({ extraArgs: '--rlimit-nofile' }), 'extraArgs'],
    ['extraArgs entry not a string', () => ({ extraArgs: [0] }), 'extraArgs[0]'],
  ];

  for (const [name, make, option] of cases) {
    test(name, async (t) => {
      const w = world(t);
      w.file = path.join(w.dir, 'file');
      fs.writeFileSync(w.file, 'x');
      w.notExec = path.join(w.dir, 'not-exec');
      fs.writeFileSync(w.notExec, `#!/bin/sh\nexec '${DAEMON}' "$@"\n`);
      fs.chmodSync(w.notExec, 0o644);
      // Stale sockets at both valid paths: a validation failure must not remove them either.
      const inoSock = staleSocket(w.sockPath);
      const inoApi = staleSocket(w.apiSockPath);
      const listing = fs.readdirSync(w.dir).sort();

      const d = w.make({ path: w.wrapper, ...make(w) });
      let p;
      assert.doesNotThrow(() => {
        p = d.start(w.onQuit);
      }, 'start() rejects, it does not throw');
      const [r] = await Promise.allSettled([p]);
      if (r.status === 'fulfilled') {
        assert.fail(
          `${name}: start() resolved pid ${r.value} instead of rejecting; the dir now holds ` +
            `${JSON.stringify(fs.readdirSync(w.dir).sort())} (sockets: ${JSON.stringify(fs.readdirSync(w.dir).filter((f) => isSocket(path.join(w.dir, f))))})`,
        );
      }
      const err = r.reason;
      assert.ok(err instanceof InvalidOptionError, `InvalidOptionError expected, got ${err && err.stack}`);
      assert.equal(err.code, 'ERR_INVALID_OPTION');
      if (option instanceof RegExp) assert.match(err.option, option);
      else assert.equal(err.option, option);
      assert.ok(err.message.startsWith(`${err.option}: `), err.message);

      assert.equal(d.pid, 0);
      assert.equal(w.ran(), 0, 'the binary was never run');
      assert.deepEqual(fs.readdirSync(w.dir).sort(), listing, 'no file created or removed');
      assert.equal(fs.lstatSync(w.sockPath).ino, inoSock, 'stale sockPath untouched');
      assert.equal(fs.lstatSync(w.apiSockPath).ino, inoApi, 'stale apiSockPath untouched');
      assert.deepEqual(w.quits, []);
      // Nothing is wedged: a second start fails the same way, not with DaemonRunningError.
      const again = await rejection(d.start(w.onQuit), `${name} (again)`);
      assert.ok(again instanceof InvalidOptionError, `again: ${again && again.stack}`);
      assert.equal(again.option, err.option);
      assert.equal(w.ran(), 0);
      // stop() of a daemon that never started is a no-op.
      await d.stop();
      await assertNothingLeft(0, w.dir);
    });
  }

  test('path not given: $NYDUSD is used, and an error names $NYDUSD', async (t) => {
    const w = world(t);
    const saved = process.env.NYDUSD;
    t.after(() => {
      if (saved === undefined) delete process.env.NYDUSD;
      else process.env.NYDUSD = saved;
    });
    process.env.NYDUSD = path.join(w.dir, 'no-such-nydusd');
    const d = w.make({ path: undefined });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof InvalidOptionError, `InvalidOptionError expected: ${err && err.stack}`);
    assert.equal(err.option, '$NYDUSD');
    assert.equal(d.pid, 0);
    process.env.NYDUSD = w.wrapper;
    const pid = await d.start(w.onQuit);
    assert.equal(w.ran(), 1, 'the binary from $NYDUSD ran');
    await d.stop();
    await assertNothingLeft(pid, w.dir);
  });

  test('a binary that cannot be executed (ENOEXEC) -> a typed error, nothing left, start can be retried', async (t) => {
    const w = world(t);
    const garbage = path.join(w.dir, 'not-a-program');
    fs.writeFileSync(garbage, 'this is not a program\n');
    fs.chmodSync(garbage, 0o755);
    staleSocket(w.sockPath);
    const d = w.make({ path: garbage });
    for (const attempt of [1, 2]) {
      const err = await rejection(d.start(w.onQuit), `start #${attempt}`);
      assert.ok(err instanceof VirtiofsDaemonError, `attempt ${attempt}: ${err && err.stack}`);
      assert.equal(err.code, 'ENOEXEC', `attempt ${attempt}: ${err.message}`);
      assert.equal(d.pid, 0);
    }
    // The version probe (`--version`) fails first, before anything is touched.
    assert.equal(isSocket(w.sockPath), true, 'the stale socket is left as it was');
    assert.equal(exists(w.apiSockPath), false);
    assert.deepEqual(w.quits, []);
    await d.stop();
    fs.rmSync(w.sockPath);
    await assertNothingLeft(0, w.dir);
  });

  test('start while running or starting -> DaemonRunningError; the running daemon is untouched', async (t) => {
    const w = world(t);
    const d = w.make({ path: w.wrapper });
    const first = d.start(w.onQuit);
    const whileStarting = await rejection(d.start(w.onQuit), 'start while starting');
    assert.ok(
      whileStarting instanceof DaemonRunningError,
      `DaemonRunningError expected: ${whileStarting && whileStarting.stack}`,
    );
    assert.equal(whileStarting.code, 'ERR_DAEMON_RUNNING');
    const pid = await first;
    const err = await rejection(d.start(w.onQuit), 'start while running');
    assert.ok(err instanceof DaemonRunningError, `DaemonRunningError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_RUNNING');
    assert.match(err.message, new RegExp(`pid ${pid}`));
    assert.equal(d.pid, pid);
    assert.equal(w.ran(), 1, 'one process started');
    assert.ok(isSocket(w.sockPath) && isSocket(w.apiSockPath), 'its sockets are untouched');
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    await d.stop();
    assert.equal(w.quits.length, 1);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });
});

// ---------------------------------------------------------------------------------------------
// Sockets left at the paths

describe('what is at the socket paths before start', () => {
  test('stale sockets at sockPath and apiSockPath are removed and start succeeds', async (t) => {
    const w = world(t);
    staleSocket(w.sockPath);
    staleSocket(w.apiSockPath);
    assert.equal(await tryConnect(w.sockPath), 'ECONNREFUSED', 'stale: nobody listens');
    assert.equal(await tryConnect(w.apiSockPath), 'ECONNREFUSED', 'stale: nobody listens');
    // nydusd unlinks its paths itself before binding: this wrapper notes what the library left
    // there at exec time, so that we see the library's own removal.
    const seen = path.join(w.dir, 'seen');
    const wrapper = script(
      path.join(w.dir, 'seeing-nydusd'),
      `[ "$1" = --version ] && exec '${DAEMON}' "$@"\n` +
        `for p in '${w.sockPath}' '${w.apiSockPath}'; do if [ -e "$p" ]; then echo "present $p" >> '${seen}'; fi; done\n` +
        `echo exec >> '${seen}'\nexec '${DAEMON}' "$@"`,
    );
    const d = w.make({ path: wrapper });
    const pid = await d.start(w.onQuit);
    assert.ok(pid > 0);
    assert.equal(fs.readFileSync(seen, 'utf8'), 'exec\n', 'both stale sockets were removed before the daemon ran');
    assert.ok(isSocket(w.sockPath) && isSocket(w.apiSockPath));
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    // (A real nydusd would take a connection to --sock for its VMM: only the stand-in is tried.)
    if (!REAL) assert.equal(await tryConnect(w.sockPath), 'connected');
    await d.stop();
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
  });

  for (const which of ['sockPath', 'apiSockPath']) {
    test(`a regular file at ${which} -> start rejects, nothing runs, the file is intact`, async (t) => {
      const w = world(t);
      const file = w[which];
      const content = `precious data at ${which}\n`;
      fs.writeFileSync(file, content);
      const ino = fs.lstatSync(file).ino;
      const d = w.make({ path: w.wrapper });
      const err = await rejection(d.start(w.onQuit), 'start');
      assert.ok(err instanceof VirtiofsDaemonError, `a typed error expected: ${err && err.stack}`);
      assert.ok(err.message.includes(file), `the message names the path: ${err.message}`);
      assert.equal(err.code, 'EEXIST');
      assert.equal(err.option, which, 'the error names the option at fault');
      t.diagnostic(`${err.name} code=${err.code}: ${err.message}`);
      assert.equal(fs.readFileSync(file, 'utf8'), content, 'content intact');
      assert.equal(fs.lstatSync(file).ino, ino, 'same file');
      assert.equal(w.ran(), 0, 'nothing started');
      assert.equal(d.pid, 0);
      const other = which === 'sockPath' ? w.apiSockPath : w.sockPath;
      assert.equal(exists(other), false, 'no socket created at the other path');
      assert.deepEqual(w.quits, []);
      await d.stop();
    });
  }

  test('a live listener at apiSockPath -> start rejects, the listener keeps its socket', async (t) => {
    const w = world(t);
    const server = net.createServer((c) => c.destroy());
    await new Promise((r) => server.listen(w.apiSockPath, r));
    t.after(() => server.close());
    const ino = fs.lstatSync(w.apiSockPath).ino;
    const d = w.make({ path: w.wrapper });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof VirtiofsDaemonError, `a typed error expected: ${err && err.stack}`);
    t.diagnostic(`${err.name} code=${err.code}: ${err.message}`);
    assert.equal(fs.lstatSync(w.apiSockPath).ino, ino, 'the live socket stays');
    assert.equal(await tryConnect(w.apiSockPath), 'connected');
    assert.equal(w.ran(), 0, 'nothing started');
    assert.equal(exists(w.sockPath), false);
  });
});

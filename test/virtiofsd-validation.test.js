'use strict';
/**
 * Virtiofsd's validation (src/virtiofsd.ts): every bad option is an InvalidOptionError naming the
 * option, before anything is created or run; fake daemons (shell scripts) prove nothing ran.
 *
 * Build first: npm run build:ts
 * Run: node --test test/virtiofsd-validation.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Virtiofsd, InvalidOptionError, NotSupportedError, VirtiofsDaemonError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { captureLogger, isSocket, rejection, script, tempDir } = require('./helpers/util.js');
const { LEGACY_READY_LINE, track } = require('./helpers/virtiofsd.js');

describe('validation: InvalidOptionError, nothing left behind', () => {
  /**
   * A fake "virtiofsd" that leaves a marker when it is run at all: validation failures must
   * never spawn anything. dialect is given so that no --version probe runs.
   */
  function setup(t) {
    const dir = tempDir(t);
    const fake = script(path.join(dir, 'fake-virtiofsd'), `touch "$0.ran"\nexit 99`);
    const source = path.join(dir, 'src');
    fs.mkdirSync(source);
    const socketPath = path.join(dir, 'v.sock');
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    const notExec = path.join(dir, 'not-exec');
    fs.writeFileSync(notExec, '#!/bin/sh\nexit 0\n');
    fs.chmodSync(notExec, 0o644);
    return { dir, fake, source, socketPath, file, notExec, ran: `${fake}.ran` };
  }

  const longName = (dir, bytes) => path.join(dir, 'x'.repeat(bytes - dir.length - 1));

  const cases = [
    ['empty path', () => ({ path: '' }), 'path'],
    ['empty socketPath', () => ({ socketPath: '' }), 'socketPath'],
    ['empty sourcePath', () => ({ sourcePath: '' }), 'sourcePath'],
    ['binary missing', (e) => ({ path: path.join(e.dir, 'no-such-virtiofsd') }), 'path'],
    ['binary not executable', (e) => ({ path: e.notExec }), 'path'],
    ['binary is a directory', (e) => ({ path: e.dir }), 'path'],
    ['source missing', (e) => ({ sourcePath: path.join(e.dir, 'no-such-dir') }), 'sourcePath'],
    ['source is a file', (e) => ({ sourcePath: e.file }), 'sourcePath'],
    ['socket directory missing', (e) => ({ socketPath: path.join(e.dir, 'no-such-dir', 'v.sock') }), 'socketPath'],
    ['socket directory is a file', (e) => ({ socketPath: path.join(e.file, 'v.sock') }), 'socketPath'],
    ['socket path of 108 bytes', (e) => ({ socketPath: longName(e.dir, 108) }), 'socketPath'],
    [
      'socket path of < 107 characters but > 107 bytes (UTF-8)',
      (e) => ({ socketPath: path.join(e.dir, 'é'.repeat(50)) }),
      'socketPath',
    ],
    ['bad cache mode', () => ({ cache: 'bogus' }), 'cache'],
    ['readonly on legacy (no such mode there)', () => ({ readonly: true, dialect: 'legacy' }), 'readonly'],
    [
      "extraArgsPolicy 'safe' and --sandbox=none",
      () => ({ extraArgs: ['--sandbox=none'], extraArgsPolicy: 'safe', dialect: 'rust' }),
      'extraArgs[0]',
    ],
    ["cache 'metadata' on legacy", () => ({ cache: 'metadata', dialect: 'legacy' }), 'cache'],
    ['bad dialect', () => ({ dialect: 'c' }), 'dialect'],
    ['NUL byte in sourcePath', (e) => ({ sourcePath: `${e.source}\0x` }), 'sourcePath'],
    ['NUL byte in socketPath', (e) => ({ socketPath: `${e.socketPath}\0x` }), 'socketPath'],
    ['NUL byte in extraArgs[1]', () => ({ extraArgs: ['--thread-pool-size=2', 'a\0b'] }), 'extraArgs[1]'],
    ['NUL byte in path', (e) => ({ path: `${e.fake}\0x` }), 'path'],
    ['extraArgs not an array', () => ({ extraArgs: '--bogus-flag' }), 'extraArgs'],
    ['extraArgs entry not a string', () => ({ extraArgs: [3] }), 'extraArgs[0]'],
    ['syslog: true without /dev/log', () => ({ syslog: true }), 'syslog'],
    ["'--syslog' in extraArgs without /dev/log", () => ({ extraArgs: ['--syslog'] }), 'syslog'],
  ];

  for (const [name, make, option] of cases) {
    test(name, async (t) => {
      const e = setup(t);
      if (option === 'syslog') {
        // The precondition, so that this cannot pass vacuously on a machine with syslog.
        assert.equal(fs.existsSync('/dev/log'), false, 'this test needs a machine without /dev/log');
      }
      const opts = { path: e.fake, dialect: 'legacy', socketPath: e.socketPath, sourcePath: e.source, ...make(e) };
      const d = new Virtiofsd({ ...opts, logger: captureLogger().logger });
      track(t, d);
      const quits = [];
      const before = h.liveChildren().length;
      const fd0 = h.fdCount();
      const err = await rejection(
        d.start((x) => quits.push(x)),
        name,
      );
      assert.equal(h.fdCount(), fd0, 'an fd was leaked');
      assert.ok(err instanceof InvalidOptionError, `expected InvalidOptionError, got ${err?.name}: ${err?.message}`);
      assert.ok(err instanceof VirtiofsDaemonError);
      assert.equal(err.code, 'ERR_INVALID_OPTION');
      assert.equal(err.option, option, `option named in: ${err.message}`);
      assert.ok(err.message.startsWith(`${option}: `), err.message);
      // Nothing was created or run.
      for (const p of [e.socketPath, opts.socketPath]) {
        if (typeof p === 'string' && !p.includes('\0')) assert.equal(fs.existsSync(p), false, `${p} was created`);
      }
      assert.equal(fs.existsSync(e.ran), false, 'the daemon was run');
      assert.equal(h.liveChildren().length, before, 'a child process was left');
      assert.deepEqual(h.zombieChildren(), []);
      assert.equal(d.pid, 0);
      assert.deepEqual(quits, []);
      // A failed start does not poison the instance: stop() is a no-op.
      await d.stop();
    });
  }

  test('$VIRTIOFSD naming a missing binary: the error names $VIRTIOFSD (the caller gave no path)', async (t) => {
    const e = setup(t);
    const saved = process.env.VIRTIOFSD;
    t.after(() => {
      if (saved === undefined) delete process.env.VIRTIOFSD;
      else process.env.VIRTIOFSD = saved;
    });
    process.env.VIRTIOFSD = path.join(e.dir, 'no-such-virtiofsd');
    const d = new Virtiofsd({
      dialect: 'legacy',
      socketPath: e.socketPath,
      sourcePath: e.source,
      logger: captureLogger().logger,
    });
    track(t, d);
    const err = await rejection(d.start(), '$VIRTIOFSD missing');
    assert.ok(err instanceof InvalidOptionError, `${err?.name}: ${err?.message}`);
    assert.equal(fs.existsSync(e.socketPath), false);
    // The input at fault is the environment variable, not the (absent) `path` option.
    assert.ok(
      err.message.includes('$VIRTIOFSD'),
      `message does not name $VIRTIOFSD: ${err.message} (option ${err.option})`,
    );
  });

  test('a socket path of exactly 107 bytes is accepted', async (t) => {
    const e = setup(t);
    const ready = script(path.join(e.dir, 'ready'), `echo '${LEGACY_READY_LINE}' >&2\nexec sleep 30`);
    const socketPath = longName(e.dir, 107);
    assert.equal(Buffer.byteLength(socketPath), 107);
    const d = new Virtiofsd({
      path: ready,
      dialect: 'legacy',
      socketPath,
      sourcePath: e.source,
      logger: captureLogger().logger,
    });
    track(t, d);
    await d.start();
    assert.ok(isSocket(socketPath));
    await d.stop();
    assert.equal(fs.existsSync(socketPath), false);
  });

  test('dialect auto: a binary whose --version is neither dialect is refused (option dialect)', async (t) => {
    const e = setup(t);
    const odd = script(
      path.join(e.dir, 'odd'),
      `[ "$1" = --version ] && { echo 'qemu-storage-daemon 9.0'; exit 0; }\ntouch "$0.ran"\nexit 99`,
    );
    const d = new Virtiofsd({
      path: odd,
      socketPath: e.socketPath,
      sourcePath: e.source,
      logger: captureLogger().logger,
    });
    track(t, d);
    const err = await rejection(d.start(), 'odd --version');
    assert.ok(err instanceof InvalidOptionError, `${err?.name}: ${err?.message}`);
    assert.equal(err.option, 'dialect');
    assert.equal(fs.existsSync(e.socketPath), false);
    assert.equal(fs.existsSync(`${odd}.ran`), false);
    assert.deepEqual(h.zombieChildren(), []);
  });

  test('mount() and umount() reject with ERR_NOT_SUPPORTED', async (t) => {
    const e = setup(t);
    const d = new Virtiofsd({
      path: e.fake,
      socketPath: e.socketPath,
      sourcePath: e.source,
      logger: captureLogger().logger,
    });
    const m = await rejection(d.mount({ source: '/x', mountpoint: '/y', config: '{}' }), 'mount');
    assert.ok(m instanceof NotSupportedError);
    assert.equal(m.code, 'ERR_NOT_SUPPORTED');
    const u = await rejection(d.umount('/y'), 'umount');
    assert.ok(u instanceof NotSupportedError);
    assert.equal(u.code, 'ERR_NOT_SUPPORTED');
    assert.equal(fs.existsSync(e.ran), false);
  });
});

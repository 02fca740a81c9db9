'use strict';
/**
 * Kata Containers' own unit tests of the daemons it drives, ported case by case to this API:
 * src/runtime/virtcontainers/virtiofsd_test.go and nydusd_test.go, at the seed commit
 * 2d9f89aec7 (legacy virtiofsd, nydusd 1.x command line) and at main (Rust virtiofsd, nydusd
 * `virtiofs` subcommand). Each test is named `<Go test> / <case> [seed|main]`.
 *
 * Where Kata stubs the process (`utils.StartCmd`, `startFn`, `setupShareDirFn`), the port runs
 * the real virtiofsd and the nydusd stand-in (or $NYDUSD): our start() really spawns. Where
 * Kata's `args(fd)` takes the fd number, ours always hands the socket at fd 3, so `--fd=123` and
 * `--fd=456` both become `--fd=3`. Kata's `valid()` has no public equivalent: its cases go
 * through start(), which validates before anything is created.
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');

const {
  Virtiofsd,
  Nydusd,
  buildVirtiofsdArgs,
  buildNydusdArgs,
  parseExtraOption,
  ExtraOptionError,
  InvalidOptionError,
} = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { tempDir } = require('./helpers/util.js');

const STANDIN = path.join(__dirname, 'helpers', 'nydusd-standin.js');
const NYDUSD = process.env.NYDUSD || STANDIN;
const silent = pino({ level: 'silent' });

/** start(); resolves to the error, or null once a started daemon is stopped again. */
async function startError(t, daemon) {
  t.after(() => daemon.stop().catch(() => {}));
  try {
    await daemon.start();
  } catch (err) {
    assert.equal(daemon.pid, 0, 'nothing left running after a failed start');
    return err;
  }
  await daemon.stop();
  return null;
}

// -------------------------------------------------------------------------------- virtiofsd_test.go

describe('virtiofsd_test.go', () => {
  for (const [rev, dialect] of [
    ['seed', 'legacy'],
    ['main', 'rust'],
  ]) {
    const world = (t) => {
      const sourcePath = tempDir(t);
      const socketDir = tempDir(t);
      return { sourcePath, socketPath: path.join(socketDir, 'socket.s') };
    };
    // Kata's "valid config" has path /usr/bin/virtiofsd-path with StartCmd stubbed; ours runs the real one.
    test(`TestVirtiofsdStart / empty config [${rev}]`, async (t) => {
      const err = await startError(t, new Virtiofsd({ logger: silent }));
      assert.ok(err instanceof InvalidOptionError, String(err));
    });
    test(`TestVirtiofsdStart / Directory socket does not exist [${rev}]`, async (t) => {
      const w = world(t);
      const err = await startError(
        t,
        new Virtiofsd({
          path: h.virtiofsdPath(dialect),
          sourcePath: w.sourcePath,
          socketPath: '/tmp/path/to/virtiofsd/socket.sock',
          logger: silent,
        }),
      );
      assert.ok(err instanceof InvalidOptionError && err.option === 'socketPath', String(err));
    });
    test(`TestVirtiofsdStart / valid config [${rev}]`, async (t) => {
      const w = world(t);
      const err = await startError(t, new Virtiofsd({ path: h.virtiofsdPath(dialect), ...w, logger: silent }));
      assert.equal(err, null);
    });
  }

  test('TestVirtiofsdArgs [seed]: cache "none", legacy command line', () => {
    const v = { dialect: 'legacy', sourcePath: '/run/kata-shared/foo', cache: 'none', syslog: true };
    const expected = '--syslog -o cache=none -o no_posix_lock -o source=/run/kata-shared/foo --fd=3 -f';
    assert.equal(buildVirtiofsdArgs(v).join(' '), expected, 'fd 123 in Kata');
    assert.equal(buildVirtiofsdArgs({ ...v, debug: false }).join(' '), expected, 'fd 456 in Kata');
  });

  test('TestVirtiofsdArgs [main]: cache "never", Rust command line', () => {
    const v = { dialect: 'rust', sourcePath: '/run/kata-shared/foo', cache: 'never', syslog: true };
    const expected = '--syslog --cache=never --shared-dir=/run/kata-shared/foo --fd=3';
    assert.equal(buildVirtiofsdArgs(v).join(' '), expected, 'fd 123 in Kata');
    assert.equal(buildVirtiofsdArgs(v).join(' '), expected, 'fd 456 in Kata');
  });

  test('TestVirtiofsdArgs [main + inodeFileHandles]: --inode-file-handles=prefer', () => {
    const v = {
      dialect: 'rust',
      sourcePath: '/run/kata-shared/foo',
      cache: 'never',
      syslog: true,
      inodeFileHandles: 'prefer',
    };
    assert.equal(
      buildVirtiofsdArgs(v).join(' '),
      '--syslog --cache=never --shared-dir=/run/kata-shared/foo --fd=3 --inode-file-handles=prefer',
    );
  });

  // TestValid: Kata's socketPath there is `socketDir + "socket.s"` (no slash): a file beside the dir.
  for (const [rev, dialect] of [
    ['seed', 'legacy'],
    ['main', 'rust'],
  ]) {
    const cases = [
      ['valid case', () => ({}), null],
      ['no path', () => ({ path: '' }), 'path'],
      ['no sourcePath', () => ({ sourcePath: '' }), 'sourcePath'],
      ['no socketPath', () => ({ socketPath: '' }), 'socketPath'],
      ['source is not available', () => ({ sourcePath: '/foo/bar' }), 'sourcePath'],
    ];
    if (rev === 'main') {
      cases.push(
        ['invalid cache mode', () => ({ cache: 'foo' }), 'cache'],
        ['valid metadata cache mode', () => ({ cache: 'metadata' }), null],
      );
    }
    for (const [name, change, option] of cases) {
      test(`TestValid / ${name} [${rev}]`, async (t) => {
        const sourcePath = tempDir(t);
        const socketDir = tempDir(t);
        const socketPath = `${socketDir}socket.s`;
        t.after(() => fs.rmSync(socketPath, { force: true }));
        const base = {
          path: h.virtiofsdPath(dialect),
          sourcePath,
          socketPath,
          cache: rev === 'main' ? 'auto' : undefined,
          logger: silent,
        };
        const err = await startError(t, new Virtiofsd({ ...base, ...change() }));
        if (option === null) assert.equal(err, null);
        else assert.ok(err instanceof InvalidOptionError && err.option === option, `${option}: ${err}`);
      });
    }
  }
});

// -------------------------------------------------------------------------------- nydusd_test.go

describe('nydusd_test.go', () => {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  for (const rev of ['seed', 'main']) {
    const world = (t) => {
      const sourcePath = tempDir(t);
      const socketDir = tempDir(t);
      return {
        sourcePath,
        sockPath: path.join(socketDir, 'vhost-user.sock'),
        apiSockPath: path.join(socketDir, 'api.sock'),
      };
    };
    test(`TestNydusdStart / empty config [${rev}]`, async (t) => {
      const err = await startError(t, new Nydusd({ logger: silent }));
      assert.ok(err instanceof InvalidOptionError, String(err));
    });
    test(`TestNydusdStart / directory source path not exist [${rev}]`, async (t) => {
      const w = world(t);
      const err = await startError(
        t,
        new Nydusd({ path: NYDUSD, ...w, sourcePath: '/tmp/path/to/nydusd/sourcepath', env, logger: silent }),
      );
      assert.ok(err instanceof InvalidOptionError && err.option === 'sourcePath', String(err));
    });
    // Kata stubs startFn/waitFn/setupShareDirFn; ours starts the daemon and mounts the share for real.
    test(`TestNydusdStart / valid config [${rev}]`, async (t) => {
      const w = world(t);
      const err = await startError(t, new Nydusd({ path: NYDUSD, ...w, env, logger: silent }));
      assert.equal(err, null);
    });
  }

  test('TestNydusdArgs [seed]: nydusd 1.x command line', () => {
    const nd = { sockPath: '/var/lib/vhost-user.sock', apiSockPath: '/var/lib/api.sock', debug: true, cli: 'flat' };
    assert.equal(
      buildNydusdArgs(nd).join(' '),
      '--log-level debug --apisock /var/lib/api.sock --sock /var/lib/vhost-user.sock',
    );
    assert.equal(
      buildNydusdArgs({ ...nd, debug: false }).join(' '),
      '--log-level info --apisock /var/lib/api.sock --sock /var/lib/vhost-user.sock',
    );
  });

  test('TestNydusdArgs [main]: nydusd virtiofs subcommand', () => {
    const nd = { sockPath: '/var/lib/vhost-user.sock', apiSockPath: '/var/lib/api.sock', debug: true };
    assert.equal(
      buildNydusdArgs(nd).join(' '),
      'virtiofs --log-level debug --apisock /var/lib/api.sock --sock /var/lib/vhost-user.sock',
    );
    assert.equal(
      buildNydusdArgs({ ...nd, debug: false }).join(' '),
      'virtiofs --log-level info --apisock /var/lib/api.sock --sock /var/lib/vhost-user.sock',
    );
  });

  for (const rev of ['seed', 'main']) {
    for (const [name, change, option] of [
      ['valid', {}, null],
      ['path ""', { path: '' }, 'path'],
      ['sockPath ""', { sockPath: '' }, 'sockPath'],
      ['apiSockPath ""', { apiSockPath: '' }, 'apiSockPath'],
      ['sourcePath ""', { sourcePath: '' }, 'sourcePath'],
    ]) {
      test(`TestNydusdValid / ${name} [${rev}]`, async (t) => {
        const sourcePath = tempDir(t);
        const socketDir = tempDir(t);
        const base = {
          path: NYDUSD,
          sourcePath,
          sockPath: path.join(socketDir, 'vhost-user.sock'),
          apiSockPath: path.join(socketDir, 'api.sock'),
        };
        const err = await startError(t, new Nydusd({ ...base, ...change, env, logger: silent }));
        if (option === null) assert.equal(err, null);
        else assert.ok(err instanceof InvalidOptionError && err.option === option, `${option}: ${err}`);
      });
    }
  }

  const b64 = (s) => Buffer.from(s).toString('base64');
  for (const rev of ['seed', 'main']) {
    for (const [name, option, code] of [
      [
        'valid option',
        `extraoption=${b64('{"source":"/path/to/bootstrap","config":"config content","snapshotdir":"/path/to/snapshotdir"}')}`,
        null,
      ],
      [
        'no extra option',
        b64('{"source":/path/to/bootstrap,"config":config content,"snapshotdir":/path/to/snapshotdir}'),
        'ERR_EXTRA_OPTION_MISSING',
      ],
      [
        'no source',
        `extraoption=${b64('{"config":config content,"snapshotdir":/path/to/snapshotdir}')}`,
        'ERR_EXTRA_OPTION_JSON',
      ],
      [
        'no config',
        `extraoption=${b64('{"source":/path/to/bootstrap,"snapshotdir":/path/to/snapshotdir}')}`,
        'ERR_EXTRA_OPTION_JSON',
      ],
      [
        'no snapshotdir',
        `extraoption=${b64('{"source":/path/to/bootstrap,"config":config content}')}`,
        'ERR_EXTRA_OPTION_JSON',
      ],
    ]) {
      test(`TestParseExtraOption / ${name} [${rev}]`, () => {
        if (code === null) {
          assert.deepEqual(parseExtraOption([option]), {
            source: '/path/to/bootstrap',
            config: 'config content',
            snapshotdir: '/path/to/snapshotdir',
          });
        } else {
          assert.throws(
            () => parseExtraOption([option]),
            (err) => err instanceof ExtraOptionError && err.code === code,
          );
        }
      });
    }
  }

  for (const rev of ['seed', 'main']) {
    for (const [mountPoint, valid] of [
      ['/rafs/xxxxaaa/lowerdir', true],
      ['/', false],
      ['/rafs', false],
      ['/xxxx', false],
      ['/rafs/aaaaa/xxxx', false],
      ['/rafs//lowerdir', false],
    ]) {
      // checkRafsMountPointValid has no public equivalent: Nydusd.mount/umount check the mountpoint
      // first; a valid one then fails only because this nydusd is not running.
      test(`TestCheckRafsMountPointValid / ${mountPoint} [${rev}]`, async () => {
        const nd = new Nydusd({ path: NYDUSD, sockPath: '/v.sock', apiSockPath: '/a.sock', sourcePath: '/' });
        for (const call of [
          () => nd.mount({ mountpoint: mountPoint, source: '/b', config: '{}' }),
          () => nd.umount(mountPoint),
        ]) {
          await assert.rejects(call(), (err) => {
            assert.equal(err.code, valid ? 'ERR_DAEMON_NOT_RUNNING' : 'ERR_INVALID_OPTION', err.message);
            return true;
          });
        }
      });
    }
  }
});

describe('parseExtraOption beyond Kata', () => {
  const b64 = (s) => Buffer.from(s).toString('base64');
  const full = { source: '/b', config: '{"device":{}}', snapshotdir: '/s' };
  test('the last extraoption wins, among other mount options', () => {
    const opts = [
      'ro',
      `extraoption=${b64(JSON.stringify({ ...full, source: '/first' }))}`,
      `extraoption=${b64(JSON.stringify(full))}`,
    ];
    assert.deepEqual(parseExtraOption(opts), full);
  });
  test('each way it can be wrong has its code', () => {
    for (const [opts, code] of [
      [[], 'ERR_EXTRA_OPTION_MISSING'],
      [['extraoption='], 'ERR_EXTRA_OPTION_MISSING'],
      [['extraoption=not base64!'], 'ERR_EXTRA_OPTION_BASE64'],
      [['extraoption=YWJj='], 'ERR_EXTRA_OPTION_BASE64'],
      [[`extraoption=${b64('[1,2]')}`], 'ERR_EXTRA_OPTION_JSON'],
      [[`extraoption=${b64(JSON.stringify({ ...full, config: 7 }))}`], 'ERR_EXTRA_OPTION_FIELD'],
      [[`extraoption=${b64(JSON.stringify({ ...full, snapshotdir: '' }))}`], 'ERR_EXTRA_OPTION_FIELD'],
    ]) {
      assert.throws(
        () => parseExtraOption(opts),
        (err) => err instanceof ExtraOptionError && err.code === code && /^mountOptions: /.test(err.message),
        JSON.stringify(opts),
      );
    }
    assert.throws(() => parseExtraOption('extraoption=x'), { option: 'mountOptions' });
  });
});

// Issue 16, finding 8: Kata's inputs read bounded and typed. What reaches parseExtraOption comes
// from a mount request; what reaches fromKataConfig is the operator's, but a getter, a Proxy or a
// huge list there must still end in a typed error, never an untyped RangeError or a hang.
describe('bounded, typed parsing of Kata inputs', () => {
  const { MAX_EXTRA_OPTION_BYTES, fromKataConfig } = require('../dist/index.js');
  const b64 = (s) => Buffer.from(s).toString('base64');
  const full = { source: '/b', config: '{"device":{}}', snapshotdir: '/s' };

  function assertExtraOption(fn, code, what) {
    assert.throws(
      fn,
      (err) => {
        assert.ok(err instanceof ExtraOptionError, `${what}: ${err?.name}: ${err?.message?.slice(0, 200)}`);
        assert.equal(err.code, code, what);
        assert.match(err.message, /^mountOptions: /);
        return true;
      },
      what,
    );
  }

  function assertInvalid(fn, option, what, re) {
    assert.throws(
      fn,
      (err) => {
        assert.ok(err instanceof InvalidOptionError, `${what}: ${err?.name}: ${err?.message?.slice(0, 200)}`);
        assert.equal(err.option, option, `${what}: ${err.message}`);
        if (re) assert.match(err.message, re, what);
        return true;
      },
      what,
    );
  }

  test('parseExtraOption refuses more than 1 MiB of base64 before any parsing, naming the cap', () => {
    assert.equal(MAX_EXTRA_OPTION_BYTES, 1024 * 1024);
    // 5 MB and 8 MB of base64 threw "RangeError: Maximum call stack size exceeded" from the old regex.
    for (const size of [5 * 1000 * 1000, 8 * 1024 * 1024, MAX_EXTRA_OPTION_BYTES + 4]) {
      assertExtraOption(
        () => parseExtraOption([`extraoption=${'A'.repeat(size)}`]),
        'ERR_EXTRA_OPTION_TOO_LARGE',
        `${size}`,
      );
      assert.throws(() => parseExtraOption([`extraoption=${'A'.repeat(size)}`]), /at most 1048576 \(1 MiB of base64\)/);
    }
    // A real-looking one just under the cap still parses: the cap is on size, not on shape.
    const config = JSON.stringify({ device: { backend: { type: 'localfs' } }, pad: 'x'.repeat(700 * 1024) });
    const encoded = b64(JSON.stringify({ ...full, config }));
    assert.ok(encoded.length <= MAX_EXTRA_OPTION_BYTES && encoded.length > 900 * 1024, `${encoded.length}`);
    assert.equal(parseExtraOption([`extraoption=${encoded}`]).config, config);
  });

  test('parseExtraOption checks base64 in one pass: length, alphabet, padding only at the end', () => {
    for (const [value, code] of [
      ['YWJj', 'ERR_EXTRA_OPTION_JSON'], // valid base64 of "abc", not JSON
      ['YWJ', 'ERR_EXTRA_OPTION_BASE64'],
      ['YW=j', 'ERR_EXTRA_OPTION_BASE64'],
      ['YW==YWJj', 'ERR_EXTRA_OPTION_BASE64'],
      ['YWJ===', 'ERR_EXTRA_OPTION_BASE64'],
      ['YWJj\u00e9AAA', 'ERR_EXTRA_OPTION_BASE64'],
      ['YW-_', 'ERR_EXTRA_OPTION_BASE64'], // base64url is not what the snapshotter writes
      [`${'A'.repeat(MAX_EXTRA_OPTION_BYTES - 1)}!`, 'ERR_EXTRA_OPTION_BASE64'],
      [b64('['.repeat(100000)), 'ERR_EXTRA_OPTION_JSON'],
    ]) {
      assertExtraOption(() => parseExtraOption([`extraoption=${value}`]), code, value.slice(0, 20));
    }
    assert.deepEqual(parseExtraOption([`extraoption=${b64(JSON.stringify(full))}`]), full);
  });

  test('parseExtraOption reads the list once, bounded: Proxies, getters, huge and nested lists are typed', () => {
    const huge = new Proxy([], { get: (t, k) => (k === 'length' ? 2 ** 32 - 1 : Reflect.get(t, k)) });
    assertInvalid(() => parseExtraOption(huge), 'mountOptions', 'length 2^32-1', /at most 65536/);
    const throwing = [];
    Object.defineProperty(throwing, 0, {
      get() {
        throw new Error('getter');
      },
    });
    assertInvalid(() => parseExtraOption(throwing), 'mountOptions[0]', 'throwing entry', /reading it threw \(getter\)/);
    assertInvalid(() => parseExtraOption(['ro', ['extraoption=x']]), 'mountOptions[1]', 'nested array');
    assertInvalid(() => parseExtraOption(['ro', 7]), 'mountOptions[1]', 'a number');
    const revoked = Proxy.revocable([], {});
    revoked.revoke();
    assertInvalid(() => parseExtraOption(revoked.proxy), 'mountOptions', 'revoked Proxy');
    assertInvalid(() => parseExtraOption(undefined), 'mountOptions', 'undefined');
    // An entry read twice could be checked as one value and used as another: each is read once.
    let reads = 0;
    const once = [];
    Object.defineProperty(once, 0, {
      get: () => (reads++ === 0 ? `extraoption=${b64(JSON.stringify(full))}` : 'extraoption=!!!!'),
    });
    assert.deepEqual(parseExtraOption(once), full);
    assert.equal(reads, 1);
  });

  test('fromKataConfig: a throwing getter on any key is an InvalidOptionError naming it, with the cause', () => {
    for (const key of ['virtio_fs_daemon', 'virtio_fs_cache', 'virtio_fs_extra_args']) {
      const cause = new Error(`no ${key}`);
      const config = Object.defineProperty({}, key, {
        get() {
          throw cause;
        },
      });
      assert.throws(
        () => fromKataConfig(config),
        (err) => err instanceof InvalidOptionError && err.option === key && err.cause === cause,
        key,
      );
    }
    const trap = new Proxy({}, { get: () => Symbol.for('x').description.boom() });
    assertInvalid(() => fromKataConfig(trap), 'virtio_fs_daemon', 'a Proxy whose get trap throws');
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    assertInvalid(() => fromKataConfig(revoked.proxy), 'virtio_fs_daemon', 'a revoked Proxy');
    for (const bad of [null, undefined, 'virtio_fs_cache=auto', 7]) {
      assertInvalid(() => fromKataConfig(bad), 'config', String(bad));
    }
  });

  test('fromKataConfig: virtio_fs_extra_args bounded and read once — length 2^32-1, throwing entries, nested arrays', () => {
    const args = (list) => fromKataConfig({ virtio_fs_extra_args: list });
    const huge = new Proxy(['--xattr'], { get: (t, k) => (k === 'length' ? 2 ** 32 - 1 : Reflect.get(t, k)) });
    assertInvalid(() => args(huge), 'virtio_fs_extra_args', 'length 2^32-1', /at most 65536/);
    assertInvalid(() => args(new Array(70000).fill('-f')), 'virtio_fs_extra_args', '70000 entries');
    const lengthThrows = new Proxy([], {
      get(t, k) {
        if (k === 'length') throw new RangeError('length');
        return Reflect.get(t, k);
      },
    });
    assertInvalid(() => args(lengthThrows), 'virtio_fs_extra_args', 'length getter', /cannot be read \(length\)/);
    const entryThrows = ['--xattr'];
    Object.defineProperty(entryThrows, 1, {
      enumerable: true,
      get() {
        throw new Error('entry');
      },
    });
    assertInvalid(() => args(entryThrows), 'virtio_fs_extra_args[1]', 'throwing entry', /reading it threw/);
    assertInvalid(() => args(['--xattr', ['--sandbox=none']]), 'virtio_fs_extra_args[1]', 'nested array');
    assertInvalid(() => args([[[['-f']]]]), 'virtio_fs_extra_args[0]', 'deeply nested arrays');
    // eslint-disable-next-line no-sparse-arrays
    assertInvalid(() => args(['--xattr', , '-f']), 'virtio_fs_extra_args[1]', 'a hole');
    assertInvalid(() => args('--xattr'), 'virtio_fs_extra_args', 'a string');
    assertInvalid(() => args(['--tag=a\0b']), 'virtio_fs_extra_args[0]', 'NUL', /NUL/);
    // Each entry read once: the value checked is the value used.
    let reads = 0;
    const changing = [];
    Object.defineProperty(changing, 0, { enumerable: true, get: () => (reads++ === 0 ? '--xattr' : '--sandbox=none') });
    assert.deepEqual(args(changing), { xattr: true });
    assert.equal(reads, 1);
    // And a long, legitimate list is fine.
    assert.deepEqual(args(new Array(60000).fill('-f')), {});
  });

  test("fromKataConfig applies no policy: it is for the operator's configuration.toml, never for annotations", () => {
    // Everything Kata's configuration may say passes as typed options, unsafe or not: the caller
    // must not feed it a tenant's input (that belongs in extraArgs with extraArgsPolicy 'safe').
    assert.deepEqual(
      fromKataConfig({ virtio_fs_extra_args: ['--sandbox=none', '--xattr', '-o', 'modcaps=+sys_admin'] }),
      {
        sandbox: 'none',
        xattr: true,
        modcaps: '+sys_admin',
      },
    );
  });
});

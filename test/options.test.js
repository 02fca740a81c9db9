'use strict';
/**
 * Typed options, Kata's configuration keys and the extra-arguments policy (issue 11), against
 * the real daemons of both virtiofsd dialects and the nydusd stand-in (or $NYDUSD):
 * - every typed option's argv, golden, for both dialects (or the refusal naming option and dialect);
 * - every typed option a dialect can express, started on that real daemon: it must accept it
 *   (start resolves on "Waiting for vhost-user socket connection", or above info, a vhost-user
 *   handshake proves it serves) and print no "unknown option";
 * - Kata's default virtio_fs_extra_args start both real daemons through fromKataConfig;
 * - hostile extra arguments refused under 'safe' with nothing created (no socket, no process);
 * - nydusd: typed logLevel, the version probe and the flat 1.x/2.0 command line.
 *
 * Run: node --test --test-concurrency=1 test/options.test.js (needs $VIRTIOFSD_LEGACY/$VIRTIOFSD_RUST
 * or the well-known paths; a missing daemon FAILS with how to get it).
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
  fromKataConfig,
  checkExtraArgs,
  detectNydusdVersion,
  nydusdCliFor,
  parseNydusdVersion,
  InvalidOptionError,
  VIRTIOFSD_OPTIONS,
} = require('../dist/index.js');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const h = require('./helpers/daemons.js');
const { captureLogger, script, tempDir } = require('./helpers/util.js');

const STANDIN = path.join(__dirname, 'helpers', 'nydusd-standin.js');
const NYDUSD = process.env.NYDUSD || STANDIN;

/** Stop the daemon after t whatever happened, and SIGKILL what is left of its group. */
function track(t, daemon) {
  const pgids = new Set();
  const start = daemon.start.bind(daemon);
  daemon.start = async (onQuit) => {
    const pid = await start(onQuit);
    pgids.add(pid);
    return pid;
  };
  t.after(async () => {
    await daemon.stop().catch(() => {});
    for (const st of h.liveMembersOfGroups(pgids)) {
      try {
        process.kill(st.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });
}

const LEGACY_BASE = ['-o', 'cache=auto', '-o', 'no_posix_lock', '-o', 'source=/s', '--fd=3', '-f'];
const RUST_BASE = ['--cache=auto', '--shared-dir=/s', '--fd=3'];
const REFUSED = Symbol('refused');
const o = (x) => ['-o', x];

/**
 * [option, value, legacy tail, rust tail]: what the typed option adds after the base command
 * line, or REFUSED (an InvalidOptionError naming the option and the dialect). Every typed
 * option appears; `realStart: false` marks cases that are only argv facts.
 */
const GOLDEN = [
  ['threadPoolSize', 4, ['--thread-pool-size=4'], ['--thread-pool-size=4']],
  ['threadPoolSize', 0, ['--thread-pool-size=0'], ['--thread-pool-size=0']],
  ['announceSubmounts', true, o('announce_submounts'), ['--announce-submounts']],
  ['announceSubmounts', false, [], ['--no-announce-submounts']],
  ['xattr', true, o('xattr'), ['--xattr']],
  ['xattr', false, o('no_xattr'), []],
  ['xattrmap', ':map::user.virtiofs.:', o('xattrmap=:map::user.virtiofs.:'), ['--xattrmap=:map::user.virtiofs.:']],
  [
    'xattrmap',
    ':ok:client:a,b:::ok:all:::',
    o('xattrmap=:ok:client:a\\,b:::ok:all:::'),
    ['--xattrmap=:ok:client:a,b:::ok:all:::'],
  ],
  ['posixAcl', true, [...o('posix_acl'), ...o('xattr')], ['--posix-acl']],
  ['posixAcl', false, o('no_posix_acl'), []],
  ['securityLabel', true, [...o('security_label'), ...o('xattr')], ['--security-label']],
  ['securityLabel', false, o('no_security_label'), []],
  ['sandbox', 'namespace', o('sandbox=namespace'), ['--sandbox=namespace']],
  ['sandbox', 'chroot', o('sandbox=chroot'), ['--sandbox=chroot']],
  ['sandbox', 'none', REFUSED, ['--sandbox=none']],
  ['seccomp', 'kill', [], ['--seccomp=kill']],
  ['seccomp', 'log', REFUSED, ['--seccomp=log']],
  ['seccomp', 'trap', REFUSED, ['--seccomp=trap']],
  ['seccomp', 'none', REFUSED, ['--seccomp=none']],
  ['readonly', true, REFUSED, ['--readonly']],
  ['readonly', false, [], []],
  ['inodeFileHandles', 'never', [], ['--inode-file-handles=never']],
  ['inodeFileHandles', 'prefer', REFUSED, ['--inode-file-handles=prefer']],
  ['inodeFileHandles', 'mandatory', REFUSED, ['--inode-file-handles=mandatory'], { realStart: false }],
  ['allowDirectIo', true, o('allow_direct_io'), ['--allow-direct-io']],
  ['allowDirectIo', false, o('no_allow_direct_io'), []],
  ['writeback', true, o('writeback'), ['--writeback']],
  ['writeback', false, o('no_writeback'), []],
  ['killprivV2', true, o('killpriv_v2'), ['--killpriv-v2']],
  ['killprivV2', false, o('no_killpriv_v2'), ['--no-killpriv-v2']],
  ['readdirplus', true, o('readdirplus'), []],
  ['readdirplus', false, o('no_readdirplus'), ['--no-readdirplus']],
  ['logLevel', 'error', o('log_level=err'), ['--log-level=error']],
  ['logLevel', 'warn', o('log_level=warn'), ['--log-level=warn']],
  ['logLevel', 'info', o('log_level=info'), ['--log-level=info']],
  ['logLevel', 'debug', o('log_level=debug'), ['--log-level=debug']],
  ['logLevel', 'trace', REFUSED, ['--log-level=trace']],
  ['logLevel', 'off', REFUSED, ['--log-level=off']],
  ['modcaps', '-mknod', o('modcaps=-mknod'), ['--modcaps=-mknod']],
  [
    'modcaps',
    '+sys_admin:-chown',
    o('modcaps=+sys_admin:-chown'),
    ['--modcaps=+sys_admin:-chown'],
    { realStart: false },
  ],
  ['rlimitNofile', 4096, ['--rlimit-nofile=4096'], ['--rlimit-nofile=4096']],
  ['preserveNoatime', true, REFUSED, ['--preserve-noatime']],
  ['preserveNoatime', false, [], []],
  ['allowMmap', true, REFUSED, ['--allow-mmap']],
  ['allowMmap', false, [], []],
  ['migrationMode', 'find-paths', REFUSED, ['--migration-mode=find-paths']],
  ['migrationMode', 'file-handles', REFUSED, ['--migration-mode=file-handles']],
  ['migrationOnError', 'abort', REFUSED, ['--migration-on-error=abort']],
  ['migrationOnError', 'guest-error', REFUSED, ['--migration-on-error=guest-error']],
  ['migrationVerifyHandles', true, REFUSED, ['--migration-verify-handles']],
  ['migrationVerifyHandles', false, [], []],
  ['migrationConfirmPaths', true, REFUSED, ['--migration-confirm-paths']],
  ['migrationConfirmPaths', false, [], []],
  ['posixLock', false, [], []],
  ['flock', true, o('flock'), REFUSED],
  ['flock', false, o('no_flock'), []],
  ['timeout', 5, o('timeout=5'), REFUSED],
  ['maxIdleThreads', 4, o('max_idle_threads=4'), REFUSED],
];

const DIALECT_WORDS = { legacy: 'legacy C virtiofsd', rust: 'Rust virtiofsd' };

function argsFor(dialect, extra) {
  return buildVirtiofsdArgs({ dialect, sourcePath: '/s', ...extra });
}

function assertRefused(fn, option, dialect) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof InvalidOptionError, String(err));
    assert.equal(err.option, option);
    assert.ok(err.message.startsWith(`${option}: `), err.message);
    if (dialect) assert.ok(err.message.includes(DIALECT_WORDS[dialect]), `names the dialect: ${err.message}`);
    return true;
  });
}

describe('typed virtiofsd options: argv golden for both dialects', () => {
  test('every typed option of the table is covered by a golden case', () => {
    const covered = new Set(GOLDEN.map((g) => g[0]));
    for (const name of Object.keys(VIRTIOFSD_OPTIONS)) {
      if (name === 'posixLock') continue; // its own test below: it changes the base command line
      assert.ok(covered.has(name), `no golden case for ${name}`);
    }
  });

  for (const [name, value, legacy, rust] of GOLDEN) {
    test(`${name}: ${JSON.stringify(value)}`, () => {
      for (const [dialect, tail, base] of [
        ['legacy', legacy, LEGACY_BASE],
        ['rust', rust, RUST_BASE],
      ]) {
        if (tail === REFUSED) assertRefused(() => argsFor(dialect, { [name]: value }), name, dialect);
        else assert.deepEqual(argsFor(dialect, { [name]: value }), [...base, ...tail], dialect);
      }
    });
  }

  test('posixLock: true replaces -o no_posix_lock on legacy; the Rust daemon has no POSIX locks', () => {
    assert.deepEqual(
      argsFor('legacy', { posixLock: true }),
      LEGACY_BASE.map((a) => (a === 'no_posix_lock' ? 'posix_lock' : a)),
    );
    assertRefused(() => argsFor('rust', { posixLock: true }), 'posixLock', 'rust');
  });

  test('typed options come after the base, in table order, before extraArgs; debug and logLevel', () => {
    assert.deepEqual(
      argsFor('rust', { xattr: true, threadPoolSize: 1, announceSubmounts: true, extraArgs: ['--tag=x'] }),
      [...RUST_BASE, '--thread-pool-size=1', '--announce-submounts', '--xattr', '--tag=x'],
    );
    assert.deepEqual(argsFor('rust', { debug: true, logLevel: 'debug' }), [...RUST_BASE, '--log-level=debug']);
    assert.deepEqual(argsFor('legacy', { debug: true, logLevel: 'debug' }), [...LEGACY_BASE.slice(0, -1), '-d']);
    assertRefused(() => argsFor('rust', { debug: true, logLevel: 'warn' }), 'logLevel');
    assertRefused(() => argsFor('rust', { xattr: false, posixAcl: true }), 'xattr');
    assert.deepEqual(
      argsFor('legacy', { xattrmap: ':map::user.virtiofs.:', posixAcl: true }).filter((a) => a === 'xattr'),
      [],
      'xattrmap already turns xattr on for legacy',
    );
  });

  test('bad values name the option', () => {
    for (const [name, value] of [
      ['threadPoolSize', -1],
      ['threadPoolSize', 1.5],
      ['threadPoolSize', '4'],
      ['xattr', 'yes'],
      ['sandbox', 'jail'],
      ['seccomp', 'allow'],
      ['logLevel', 'verbose'],
      ['modcaps', 'sys_admin'],
      ['modcaps', '+a,+b'],
      ['xattrmap', ''],
      ['rlimitNofile', NaN],
      ['inodeFileHandles', 'always'],
    ]) {
      for (const dialect of ['legacy', 'rust']) assertRefused(() => argsFor(dialect, { [name]: value }), name);
    }
  });

  test("cache: 'none' is never, '' is auto, both dialects; an unknown mode is refused by the pure builder", () => {
    assert.deepEqual(argsFor('rust', { cache: 'none' }), ['--cache=never', '--shared-dir=/s', '--fd=3']);
    assert.deepEqual(argsFor('legacy', { cache: 'none' }).slice(0, 2), ['-o', 'cache=none']);
    assert.deepEqual(argsFor('rust', { cache: '' }), RUST_BASE);
    assert.deepEqual(argsFor('legacy', { cache: '' }), LEGACY_BASE);
    assertRefused(() => argsFor('rust', { cache: 'bogus' }), 'cache');
    assertRefused(() => argsFor('legacy', { cache: 'metadata' }), 'cache');
  });
});

/** Start the real `dialect` daemon with `options`; prove it serves; stop it. Returns its output lines. */
async function startReal(t, dialect, options) {
  const dir = tempDir(t);
  const source = path.join(dir, 'src');
  fs.mkdirSync(source);
  const { logger, records } = captureLogger();
  const socketPath = path.join(dir, 'v.sock');
  const d = new Virtiofsd({ path: h.virtiofsdPath(dialect), socketPath, sourcePath: source, logger, ...options });
  track(t, d);
  const pid = await d.start();
  const client = await connectVhostUser(socketPath, { timeoutMs: 5000 });
  let cmdline;
  try {
    assert.ok((await client.getFeatures()) > 0n, 'the daemon answers GET_FEATURES');
    // The argv as the kernel has it, now that the daemon serves (a quiet one is started before
    // it has exec'd; the Rust binary here is a wrapper that execs ld.so: the tail counts).
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } finally {
    client.close();
  }
  await d.stop();
  const lines = records
    .filter((r) => typeof r.line === 'string' || typeof r.msg === 'string')
    .map((r) => r.line ?? r.msg);
  const bad = lines.filter((l) => /unknown option|unexpected argument|invalid value|error:/i.test(l));
  assert.deepEqual(bad, [], `${dialect} complained about ${JSON.stringify(options)}`);
  return { records, argv: records.find((r) => r.msg === 'virtiofsd started').argv, cmdline };
}

for (const dialect of ['legacy', 'rust']) {
  describe(`typed options on the real ${dialect} virtiofsd`, () => {
    for (const [name, value, legacy, rust, extra] of GOLDEN) {
      const tail = dialect === 'legacy' ? legacy : rust;
      if (tail === REFUSED || extra?.realStart === false) continue;
      test(`${name}: ${JSON.stringify(value)} is accepted and the daemon serves`, async (t) => {
        const { argv, cmdline } = await startReal(t, dialect, { [name]: value });
        for (const a of tail) assert.ok(argv.includes(a), `${a} in ${JSON.stringify(argv)}`);
        for (const a of tail) assert.ok(cmdline.includes(a), `${a} in /proc's ${JSON.stringify(cmdline)}`);
      });
    }
    test('posixLock: false (and true on legacy) is accepted', async (t) => {
      await startReal(t, dialect, { posixLock: false });
      if (dialect === 'legacy') await startReal(t, dialect, { posixLock: true });
    });
    test("cache 'none' and '' start it", async (t) => {
      await startReal(t, dialect, { cache: 'none' });
      await startReal(t, dialect, { cache: '' });
    });
  });
}

describe('one options object for a mixed fleet', () => {
  // Every typed option both dialects can express, at a value both accept.
  const COMMON = {
    threadPoolSize: 2,
    announceSubmounts: true,
    xattr: true,
    posixAcl: true,
    securityLabel: false,
    sandbox: 'chroot',
    seccomp: 'kill',
    readonly: false,
    inodeFileHandles: 'never',
    allowDirectIo: true,
    writeback: true,
    killprivV2: false,
    readdirplus: false,
    logLevel: 'info',
    modcaps: '-mknod',
    rlimitNofile: 8192,
    preserveNoatime: false,
    allowMmap: false,
    migrationVerifyHandles: false,
    migrationConfirmPaths: false,
    posixLock: false,
    flock: false,
    cache: 'none',
  };
  for (const dialect of ['legacy', 'rust']) {
    test(`starts the real ${dialect} daemon`, async (t) => {
      await startReal(t, dialect, COMMON);
    });
  }

  test('an option one dialect lacks fails on it with a message naming option and dialect, before anything is created', async (t) => {
    for (const [dialect, opts, name] of [
      ['legacy', { readonly: true }, 'readonly'],
      ['rust', { timeout: 5 }, 'timeout'],
    ]) {
      const dir = tempDir(t);
      const socketPath = path.join(dir, 'v.sock');
      const d = new Virtiofsd({ path: h.virtiofsdPath(dialect), socketPath, sourcePath: dir, ...opts });
      await assert.rejects(
        d.start(),
        (err) =>
          err instanceof InvalidOptionError && err.option === name && err.message.includes(DIALECT_WORDS[dialect]),
      );
      assert.equal(fs.existsSync(socketPath), false, 'no socket file');
      assert.equal(d.pid, 0);
    }
  });
});

describe("Kata's configuration keys (fromKataConfig)", () => {
  const KATA_DEFAULT = {
    virtio_fs_cache: 'auto',
    virtio_fs_extra_args: ['--thread-pool-size=1', '--announce-submounts'],
  };

  test("translates Kata's default list, plus --xattr, to typed options", () => {
    assert.deepEqual(fromKataConfig({ ...KATA_DEFAULT, virtio_fs_daemon: '/usr/libexec/virtiofsd' }), {
      path: '/usr/libexec/virtiofsd',
      cache: 'auto',
      threadPoolSize: 1,
      announceSubmounts: true,
    });
    assert.deepEqual(fromKataConfig({ virtio_fs_extra_args: [...KATA_DEFAULT.virtio_fs_extra_args, '--xattr'] }), {
      threadPoolSize: 1,
      announceSubmounts: true,
      xattr: true,
    });
  });

  test("reads both dialects' spellings, both value forms, and -o groups", () => {
    assert.deepEqual(
      fromKataConfig({
        virtio_fs_cache: 'none',
        virtio_fs_extra_args: [
          '-o',
          'xattr,announce_submounts',
          '--sandbox',
          'chroot',
          '-o',
          'log_level=err',
          '--thread-pool-size',
          '4',
          '-o',
          'no_posix_lock',
          '--inode-file-handles=prefer',
          '--no-readdirplus',
          '-o',
          'modcaps=-mknod',
          '--syslog',
          '-f',
        ],
      }),
      {
        cache: 'never',
        xattr: true,
        announceSubmounts: true,
        sandbox: 'chroot',
        logLevel: 'error',
        threadPoolSize: 4,
        posixLock: false,
        inodeFileHandles: 'prefer',
        readdirplus: false,
        modcaps: '-mknod',
        syslog: true,
      },
    );
    assert.deepEqual(fromKataConfig({ virtio_fs_cache: '' }), { cache: 'auto' });
    assert.deepEqual(fromKataConfig({ virtio_fs_extra_args: ['-d'] }), { debug: true });
  });

  test('refuses unknown flags, runtime-owned flags, contradictions and bad values, naming the entry', () => {
    for (const [args, index, re] of [
      [['--bogus'], 0, /no typed equivalent/],
      [['--thread-pool-size=1', '--tag=x'], 1, /no typed equivalent/],
      [['--shared-dir=/'], 0, /runtime's to set/],
      [['-o', 'source=/'], 1, /runtime's to set/],
      [['--fd=3'], 0, /runtime's to set/],
      [['--xattr', '-o', 'no_xattr'], 2, /earlier flag/],
      [['--thread-pool-size=x'], 0, /whole number/],
      [['--sandbox=jail'], 0, /no typed equivalent/],
    ]) {
      assert.throws(
        () => fromKataConfig({ virtio_fs_extra_args: args }),
        (err) => {
          assert.ok(err instanceof InvalidOptionError, String(err));
          assert.equal(err.option, `virtio_fs_extra_args[${index}]`, err.message);
          assert.match(err.message, re);
          return true;
        },
        JSON.stringify(args),
      );
    }
    assert.throws(() => fromKataConfig({ virtio_fs_cache: 'sometimes' }), { option: 'virtio_fs_cache' });
    assert.throws(() => fromKataConfig({ virtio_fs_daemon: '' }), { option: 'virtio_fs_daemon' });
    assert.throws(() => fromKataConfig({ virtio_fs_cache: 'always', virtio_fs_extra_args: ['--cache=never'] }), {
      option: 'virtio_fs_extra_args[0]',
    });
  });

  for (const dialect of ['legacy', 'rust']) {
    test(`Kata's default list (+ --xattr) starts the real ${dialect} daemon`, async (t) => {
      const opts = fromKataConfig({
        ...KATA_DEFAULT,
        virtio_fs_extra_args: [...KATA_DEFAULT.virtio_fs_extra_args, '--xattr'],
      });
      const { argv } = await startReal(t, dialect, opts);
      const expected =
        dialect === 'legacy'
          ? ['--thread-pool-size=1', 'announce_submounts', 'xattr']
          : ['--thread-pool-size=1', '--announce-submounts', '--xattr'];
      for (const a of expected) assert.ok(argv.includes(a), `${a} in ${JSON.stringify(argv)}`);
    });
  }
});

describe('extraArgsPolicy', () => {
  /** [dialect, extraArgs, index of the refused argument, what the reason says]. */
  const HOSTILE = [
    ['rust', ['--shared-dir=/'], 0, /host directory/],
    ['rust', ['--shared-dir', '/'], 0, /host directory/],
    ['rust', ['--sandbox=none'], 0, /confinement/],
    ['rust', ['--sandbox', 'none'], 0, /confinement/],
    ['rust', ['--seccomp=none'], 0, /syscall filter/],
    ['rust', ['--seccomp', 'log'], 0, /syscall filter/],
    ['rust', ['--fd=4'], 0, /socket/],
    ['rust', ['--socket-path=/tmp/evil.sock'], 0, /socket/],
    ['rust', ['--socket=/tmp/evil.sock'], 0, /socket/],
    ['rust', ['--socket-group=kvm'], 0, /socket/],
    ['rust', ['--syslog'], 0, /syslog/],
    ['rust', ['--modcaps=+sys_admin'], 0, /capabilities/],
    ['rust', ['--uid-map=:0:0:65536:'], 0, /uids\/gids/],
    ['rust', ['--gid-map=:0:0:65536:'], 0, /uids\/gids/],
    ['rust', ['--translate-uid=map:0:0:65536'], 0, /uids\/gids/],
    ['rust', ['--translate-gid', 'squash-guest:0:0:4294967295'], 0, /uids\/gids/],
    ['rust', ['-o', 'source=/'], 1, /host directory/],
    ['rust', ['-o', 'sandbox=chroot'], 1, /confinement/],
    ['rust', ['-o', 'modcaps=+sys_admin'], 1, /capabilities/],
    ['rust', ['-o', 'xattr,source=/'], 1, /comma/],
    ['rust', ['--inode-file-handles=mandatory'], 0, /by handle/],
    ['rust', ['--print-capabilities'], 0, /exit/],
    ['rust', ['--help'], 0, /exit/],
    ['rust', ['-V'], 0, /exit/],
    ['rust', ['--cache=always'], 0, /cache option/],
    ['rust', ['/'], 0, /positional/],
    ['rust', ['--bogus-flag'], 0, /not an option/],
    ['rust', ['-o'], 0, /needs an option/],
    ['rust', ['--xattr=1'], 0, /takes no value/],
    ['rust', ['--thread-pool-size=1', '--shared-dir=/etc'], 1, /host directory/],
    ['rust', ['--thread-pool-size', '--shared-dir=/'], 0, /whole number/],
    ['legacy', ['-o', 'source=/'], 1, /host directory/],
    ['legacy', ['-o', 'xattr,source=/'], 1, /comma/],
    ['legacy', ['-o', 'cache=always,source=/etc'], 1, /comma/],
    ['legacy', ['-o', 'xattrmap=:ok:all:::,source=/'], 1, /comma/],
    ['legacy', ['-osource=/'], 0, /two arguments/],
    ['legacy', ['-o', 'sandbox=chroot'], 1, /confinement/],
    ['legacy', ['-o', 'modcaps=+sys_admin:+dac_override'], 1, /capabilities/],
    ['legacy', ['-o', 'allow_root'], 1, /allow_root/],
    ['legacy', ['--socket-path=/tmp/evil.sock'], 0, /socket/],
    ['legacy', ['--fd=5'], 0, /socket/],
    ['legacy', ['--syslog'], 0, /syslog/],
    ['legacy', ['--daemonize'], 0, /supervision/],
    ['legacy', ['--shared-dir=/'], 0, /not an option/],
    ['legacy', ['--thread-pool-size', '4'], 0, /--thread-pool-size=<value>/],
    ['legacy', ['-o', 'log_level=trace'], 1, /needs one of/],
  ];

  test(`${HOSTILE.length} hostile extra arguments are refused under 'safe', naming the argument and why, nothing created`, async (t) => {
    assert.ok(HOSTILE.length >= 30);
    const dir = tempDir(t);
    const source = path.join(dir, 'src');
    fs.mkdirSync(source);
    const marker = path.join(dir, 'ran');
    for (const [dialect, extraArgs, index, why] of HOSTILE) {
      const wrapper = script(
        path.join(dir, `virtiofsd-${dialect}`),
        `echo "$@" >> '${marker}'\nexec '${h.virtiofsdPath(dialect)}' "$@"`,
      );
      const socketPath = path.join(dir, 'v.sock');
      const d = new Virtiofsd({
        path: wrapper,
        dialect,
        socketPath,
        sourcePath: source,
        extraArgs,
        extraArgsPolicy: 'safe',
      });
      const what = `${dialect} ${JSON.stringify(extraArgs)}`;
      await assert.rejects(d.start(), (err) => {
        assert.ok(err instanceof InvalidOptionError, `${what}: ${err}`);
        assert.equal(err.option, `extraArgs[${index}]`, `${what}: ${err.message}`);
        // An -o group is quoted with its -o, as the daemon reads it: '-o source=/'.
        const shown = extraArgs[index - 1] === '-o' ? `-o ${extraArgs[index]}` : extraArgs[index];
        assert.ok(err.message.includes(`'${shown}'`), `${what}: names the argument: ${err.message}`);
        assert.match(err.message, why, what);
        return true;
      });
      assert.equal(d.pid, 0, what);
      assert.equal(fs.existsSync(socketPath), false, `${what}: no socket file`);
      assert.equal(fs.existsSync(marker), false, `${what}: the daemon was never run`);
    }
    assert.deepEqual(
      fs
        .readdirSync(dir)
        .filter((f) => !f.startsWith('virtiofsd-'))
        .sort(),
      ['src'],
    );
  });

  test("'known' accepts what the dialect documents even when 'safe' does not; 'verbatim' checks nothing", () => {
    checkExtraArgs(
      'extraArgs',
      ['--sandbox=none', '--seccomp', 'log', '--modcaps=+sys_admin'],
      'known',
      'virtiofsd-rust',
    );
    checkExtraArgs(
      'extraArgs',
      ['-o', 'sandbox=chroot', '-o', 'xattr,announce_submounts'],
      'known',
      'virtiofsd-legacy',
    );
    checkExtraArgs('extraArgs', ['--anything', '/'], 'verbatim', 'virtiofsd-rust');
    assert.throws(() => checkExtraArgs('extraArgs', ['--xattr'], 'known', 'virtiofsd-legacy'), {
      option: 'extraArgs[0]',
    });
    assert.throws(() => checkExtraArgs('extraArgs', ['-o', 'xattr'], 'known', 'nydusd-virtiofs'), {
      option: 'extraArgs[0]',
    });
    assert.throws(() => checkExtraArgs('extraArgs', [], 'paranoid', 'virtiofsd-rust'), { option: 'extraArgsPolicy' });
  });

  for (const [dialect, extraArgs] of [
    [
      'legacy',
      [
        '-o',
        'no_xattr',
        '--thread-pool-size=2',
        '-o',
        'announce_submounts',
        '-o',
        'log_level=info',
        '--rlimit-nofile=4096',
      ],
    ],
    ['rust', ['--thread-pool-size', '2', '--announce-submounts', '--log-level', 'info', '--readonly', '--tag=fs0']],
  ]) {
    test(`'safe' lets benign arguments through and the real ${dialect} daemon starts with them`, async (t) => {
      const { argv } = await startReal(t, dialect, { extraArgs, extraArgsPolicy: 'safe' });
      assert.deepEqual(argv.slice(-extraArgs.length), extraArgs);
    });
  }
});

describe('nydusd: typed options, the policy, versions', () => {
  const base = { sockPath: '/v.sock', apiSockPath: '/a.sock' };

  test('logLevel, debug, the flat and virtiofs command lines, threads refused', () => {
    assert.deepEqual(buildNydusdArgs({ ...base, logLevel: 'warn' }), [
      'virtiofs',
      '--log-level',
      'warn',
      '--apisock',
      '/a.sock',
      '--sock',
      '/v.sock',
    ]);
    assert.deepEqual(buildNydusdArgs({ ...base, debug: true, cli: 'flat' }), [
      '--log-level',
      'debug',
      '--apisock',
      '/a.sock',
      '--sock',
      '/v.sock',
    ]);
    assert.throws(() => buildNydusdArgs({ ...base, logLevel: 'verbose' }), { option: 'logLevel' });
    assert.throws(() => buildNydusdArgs({ ...base, debug: true, logLevel: 'info' }), { option: 'logLevel' });
    assert.throws(
      () => buildNydusdArgs({ ...base, threads: 4 }),
      (err) => err.option === 'threads' && /FUSE/.test(err.message),
    );
  });

  test("extraArgsPolicy 'safe' refuses what widens the guest's reach or touches host files", () => {
    for (const [args, index] of [
      [['--shared-dir', '/'], 0],
      [['-s', '/etc'], 0],
      [['--config', '/etc/shadow'], 0],
      [['--log-file=/etc/cron.d/x'], 0],
      [['--supervisor', '/run/s.sock'], 0],
      [['--upgrade'], 0],
      [['--hybrid-mode'], 0],
      [['--bootstrap=/x'], 0],
      [['--apisock', '/tmp/a'], 0],
      [['--sock=/tmp/v'], 0],
      [['--localfs-dir', '/'], 0],
      [['--prefetch-files', '/x'], 0],
      [['--rlimit-nofile', '4096', '--version'], 2],
      [['--log-level', 'debug'], 0],
      [['-l', 'warn'], 0],
      [['virtiofs'], 0],
    ]) {
      assert.throws(
        () => buildNydusdArgs({ ...base, extraArgs: args, extraArgsPolicy: 'safe' }),
        { option: `extraArgs[${index}]` },
        JSON.stringify(args),
      );
    }
    assert.deepEqual(
      buildNydusdArgs({
        ...base,
        extraArgs: ['--log-rotation-size', '10', '--rlimit-nofile=4096'],
        extraArgsPolicy: 'safe',
      }).slice(-3),
      ['--log-rotation-size', '10', '--rlimit-nofile=4096'],
    );
    assert.throws(
      () =>
        buildNydusdArgs({ ...base, cli: 'flat', extraArgs: ['--log-rotation-size', '10'], extraArgsPolicy: 'known' }),
      {
        option: 'extraArgs[0]',
      },
    );
  });

  test('versions: subcommand from 2.1, flat before, refused below 1.0', () => {
    const cli = (v) => nydusdCliFor(parseNydusdVersion(v));
    assert.equal(cli('v2.2.3'), 'virtiofs');
    assert.equal(cli('v2.1.0-rc.1'), 'virtiofs');
    assert.equal(cli('v3.0.0'), 'virtiofs');
    assert.equal(cli('v2.0.1'), 'flat');
    assert.equal(cli('v1.1.2'), 'flat');
    assert.throws(() => cli('v0.1.0'), { option: 'path' });
    assert.equal(parseNydusdVersion('nonsense'), undefined);
  });

  test('the version comes from --version (the stand-in answers as the real one does)', async (t) => {
    const dir = tempDir(t);
    const v1 = script(path.join(dir, 'nydusd-1'), `NYDUSD_STANDIN_VERSION=v1.1.2 exec '${STANDIN}' "$@"`);
    const garbage = script(path.join(dir, 'not-nydusd'), 'echo hello');
    assert.equal((await detectNydusdVersion(STANDIN)).text.startsWith('v2.'), true);
    assert.deepEqual(await detectNydusdVersion(v1), { major: 1, minor: 1, patch: 2, text: 'v1.1.2' });
    await assert.rejects(detectNydusdVersion(garbage), (err) => err.option === 'path' && /Version/.test(err.message));
  });

  for (const [label, version] of [
    ['2.x (virtiofs subcommand)', ''],
    ['1.x (flat command line)', 'v1.1.2'],
  ]) {
    test(`a nydusd ${label} starts with the command line it understands, logLevel warn, under 'safe'`, async (t) => {
      const dir = tempDir(t, 'nyo-');
      const share = path.join(dir, 'share');
      fs.mkdirSync(share);
      const bin = version
        ? script(path.join(dir, 'nydusd'), `NYDUSD_STANDIN_VERSION=${version} exec '${STANDIN}' "$@"`)
        : NYDUSD;
      const { logger, records } = captureLogger();
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const d = new Nydusd({
        path: bin,
        sockPath: path.join(dir, 'v.sock'),
        apiSockPath: path.join(dir, 'a.sock'),
        sourcePath: share,
        logger,
        env,
        logLevel: 'warn',
        extraArgs: ['--rlimit-nofile', '4096'],
        extraArgsPolicy: 'safe',
      });
      track(t, d);
      assert.ok((await d.start()) > 0);
      const started = records.find((r) => r.msg === 'nydusd started');
      assert.equal(started.argv[1] === 'virtiofs', !version, JSON.stringify(started.argv));
      assert.ok(started.argv.includes('warn'));
      await d.stop();
    });
  }
});

describe('from the snapshotter to Nydusd.mount', () => {
  test('parseExtraOption feeds mount(); prefetchFiles reach nydusd as prefetch_files [stand-in]', async (t) => {
    const { parseExtraOption } = require('../dist/index.js');
    const dir = tempDir(t, 'nyx-');
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    // A RAFS v5 superblock is all the stand-in checks of a bootstrap.
    const bootstrap = path.join(dir, 'image.boot');
    const sb = Buffer.alloc(8192);
    sb.writeUInt32LE(0x52414653, 0);
    sb.writeUInt32LE(0x500, 4);
    sb.writeUInt32LE(8192, 8);
    fs.writeFileSync(bootstrap, sb);
    fs.mkdirSync(path.join(dir, 'blobs'));
    const config = JSON.stringify({
      version: 2,
      id: 'test',
      backend: { type: 'localfs', localfs: { dir: path.join(dir, 'blobs') } },
      cache: { type: 'filecache', filecache: { work_dir: path.join(dir, 'blobs') } },
    });
    const extra = Buffer.from(
      JSON.stringify({ source: bootstrap, config, snapshotdir: path.join(dir, 'snap') }),
    ).toString('base64');
    const record = path.join(dir, 'record.jsonl');
    const env = { ...process.env, NYDUSD_STANDIN_RECORD: record };
    delete env.NODE_TEST_CONTEXT;
    const d = new Nydusd({
      path: STANDIN,
      sockPath: path.join(dir, 'v.sock'),
      apiSockPath: path.join(dir, 'a.sock'),
      sourcePath: share,
      env,
      logger: pino({ level: 'silent' }),
    });
    track(t, d);
    await d.start();
    const { source, config: cfg } = parseExtraOption(['ro', `extraoption=${extra}`]);
    await d.mount({ mountpoint: '/rafs/c1/lowerdir', source, config: cfg, prefetchFiles: ['/usr/bin', '/etc'] });
    const posts = fs
      .readFileSync(record, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.method === 'POST');
    const rafs = posts.find((r) => r.mountpoint === '/rafs/c1/lowerdir');
    assert.ok(rafs, JSON.stringify(posts));
    assert.equal(rafs.status, 204);
    assert.deepEqual(JSON.parse(rafs.body), {
      fs_type: 'rafs',
      source: bootstrap,
      config,
      prefetch_files: ['/usr/bin', '/etc'],
    });
    await d.stop();
  });
});

'use strict';
/**
 * Issue 16, finding 4: a tenant's extra arguments can never re-set what this library or the
 * operator's typed options set, in any spelling the daemon accepts.
 *
 * - Every spelling below (fuse_opt's `-o a=b`, `-o a`, comma groups, `\` escapes, `-o --fd=N`;
 *   clap's `--a=b`, `--a b`, the Rust daemon's `-o` compat options, attached and clustered short
 *   forms; nydusd's long and short flags) is refused under 'known' and 'safe' before anything is
 *   created — no socket file, no process (a wrapper script records any run) — with a message that
 *   names the argument and the option it would re-set; the same arguments pass 'verbatim' as they are.
 * - Real starts under 'verbatim' show, for representative cases, that the refused spelling WOULD
 *   have overridden the operator's value: the served directory (/proc/PID/root under the chroot
 *   sandbox), xattr: false, the operator's xattrmap, the sandbox, the log level.
 *
 * Run: node --test --test-concurrency=1 test/extra-args-override.test.js (needs both virtiofsd
 * dialects: $VIRTIOFSD_LEGACY/$VIRTIOFSD_RUST or the well-known paths; a missing one FAILS).
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const {
  Virtiofsd,
  Nydusd,
  buildVirtiofsdArgs,
  buildNydusdArgs,
  DaemonStartError,
  InvalidOptionError,
} = require('../dist/index.js');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const h = require('./helpers/daemons.js');
const { captureLogger, script, tempDir } = require('./helpers/util.js');

/** An operator's map that keeps the guest inside user.virtiofs.* (so out of security.* and trusted.*). */
const GUARD = ':prefix:all::user.virtiofs.::bad:all:::';
const OPEN = ':ok:all:::';
const POLICIES = ['known', 'safe'];

/**
 * [dialect, typed options, extraArgs, index of the refused argument, what the message names,
 * (optional) what it names under 'safe' instead]. `typed option X` cases are re-sets of a typed
 * option the operator set; the others are what the library passes itself.
 */
const OVERRIDES = [
  // The legacy daemon: fuse_opt, the last occurrence wins, -o groups unescaped.
  ['legacy', { xattrmap: GUARD }, ['-o', `xattrmap=${OPEN}`], 1, 'typed option xattrmap'],
  ['legacy', { xattrmap: GUARD }, ['-o', `x\\attrmap=${OPEN}`], 1, 'typed option xattrmap'],
  ['legacy', { xattrmap: GUARD }, ['-o', `\\170attrmap=${OPEN}`], 1, 'typed option xattrmap'],
  ['legacy', { xattrmap: GUARD }, ['-o', 'no_xattr'], 1, 'typed option xattrmap'],
  ['legacy', { xattrmap: GUARD }, ['-o', `announce_submounts,xattrmap=${OPEN}`], 1, 'typed option xattrmap', 'comma'],
  ['legacy', { xattr: false }, ['-o', 'xattr'], 1, 'typed option xattr'],
  ['legacy', { xattr: false }, ['-o', 'writeback', '-o', 'xattr'], 3, 'typed option xattr'],
  ['legacy', { xattr: false }, ['-o', `xattrmap=${OPEN}`], 1, 'typed option xattr'],
  ['legacy', { posixAcl: true }, ['-o', 'no_posix_acl'], 1, 'typed option posixAcl'],
  ['legacy', { posixAcl: true }, ['-o', 'no_xattr'], 1, 'typed option posixAcl'],
  ['legacy', { securityLabel: false }, ['-o', 'security_label'], 1, 'typed option securityLabel'],
  ['legacy', { logLevel: 'error' }, ['-o', 'log_level=debug'], 1, 'typed option logLevel'],
  ['legacy', { debug: true }, ['-o', 'log_level=err'], 1, 'typed option debug'],
  ['legacy', { sandbox: 'chroot' }, ['-o', 'sandbox=namespace'], 1, 'typed option sandbox'],
  ['legacy', { modcaps: '-mknod' }, ['-o', 'modcaps=+sys_admin'], 1, 'typed option modcaps'],
  ['legacy', { threadPoolSize: 1 }, ['--thread-pool-size=64'], 0, 'typed option threadPoolSize'],
  ['legacy', { rlimitNofile: 4096 }, ['--rlimit-nofile=0'], 0, 'typed option rlimitNofile'],
  ['legacy', { timeout: 5 }, ['-o', 'timeout=0'], 1, 'typed option timeout'],
  ['legacy', { maxIdleThreads: 2 }, ['-o', 'max_idle_threads=64'], 1, 'typed option maxIdleThreads'],
  ['legacy', { flock: false }, ['-o', 'flock'], 1, 'typed option flock'],
  ['legacy', { readdirplus: false }, ['-o', 'readdirplus'], 1, 'typed option readdirplus'],
  ['legacy', { writeback: false }, ['-o', 'writeback'], 1, 'typed option writeback'],
  ['legacy', { allowDirectIo: false }, ['-o', 'allow_direct_io'], 1, 'typed option allowDirectIo'],
  ['legacy', { killprivV2: false }, ['-o', 'killpriv_v2'], 1, 'typed option killprivV2'],
  // What the library always passes to the legacy daemon.
  ['legacy', {}, ['-o', 'source=/'], 1, 'sourcePath'],
  ['legacy', {}, ['-o', 'sour\\ce=/'], 1, 'sourcePath'],
  ['legacy', {}, ['-o', 'cache=always'], 1, 'cache option'],
  ['legacy', { posixLock: false }, ['-o', 'posix_lock'], 1, 'posixLock'],
  ['legacy', {}, ['-o', 'no_posix_lock'], 1, 'posixLock'],
  ['legacy', {}, ['-f'], 0, 'legacy daemon with -f'],
  ['legacy', {}, ['-d'], 0, 'debug option'],
  ['legacy', {}, ['-o', 'debug'], 1, 'debug option'],
  ['legacy', {}, ['--fd=4'], 0, 'fd 3'],
  ['legacy', {}, ['--syslog'], 0, 'syslog option'],
  // Spellings the legacy daemon honours that are no documented form.
  ['legacy', {}, ['-osource=/'], 0, 'two arguments'],
  ['legacy', {}, ['-o', '--fd=4'], 1, "'-o --fd' is not an option"],
  ['legacy', {}, ['-o', '-d'], 1, "'-o -d' is not an option"],
  ['legacy', {}, ['-o', '--socket-path=/tmp/x.sock'], 1, "'-o --socket-path' is not an option"],
  ['legacy', {}, ['--', '-o', 'source=/'], 0, 'positional'],

  // The Rust daemon: clap (last wins), then its -o compat options over every flag.
  ['rust', { xattrmap: GUARD }, [`--xattrmap=${OPEN}`], 0, 'typed option xattrmap'],
  ['rust', { xattrmap: GUARD }, ['--xattrmap', OPEN], 0, 'typed option xattrmap'],
  ['rust', { xattrmap: GUARD }, ['-o', `xattrmap=${OPEN}`], 1, 'typed option xattrmap'],
  ['rust', { xattrmap: GUARD }, ['-o', 'no_xattr'], 1, 'typed option xattrmap'],
  ['rust', { xattr: false }, ['--xattr'], 0, 'typed option xattr'],
  ['rust', { xattr: false }, ['-o', 'xattr'], 1, 'typed option xattr'],
  ['rust', { xattr: false }, ['-o', 'writeback,xattr'], 1, 'typed option xattr', 'comma'],
  ['rust', { xattr: false }, ['--posix-acl'], 0, 'typed option xattr'],
  ['rust', { xattr: false }, ['--security-label'], 0, 'typed option xattr'],
  ['rust', { xattr: false }, ['-o', 'posix_acl'], 1, 'typed option xattr'],
  ['rust', { xattr: false }, ['-o', 'security_label'], 1, 'typed option xattr'],
  ['rust', { xattr: false }, [`--xattrmap=${OPEN}`], 0, 'typed option xattr'],
  ['rust', { sandbox: 'chroot' }, ['--sandbox=none'], 0, 'typed option sandbox'],
  ['rust', { sandbox: 'chroot' }, ['--sandbox', 'none'], 0, 'typed option sandbox'],
  ['rust', { sandbox: 'chroot' }, ['-o', 'sandbox=namespace'], 1, 'typed option sandbox'],
  ['rust', { seccomp: 'kill' }, ['--seccomp=none'], 0, 'typed option seccomp'],
  ['rust', { inodeFileHandles: 'never' }, ['--inode-file-handles=prefer'], 0, 'typed option inodeFileHandles'],
  ['rust', { logLevel: 'error' }, ['-d'], 0, 'typed option logLevel'],
  ['rust', { logLevel: 'error' }, ['--log-level=debug'], 0, 'typed option logLevel'],
  ['rust', { logLevel: 'error' }, ['--log-level', 'debug'], 0, 'typed option logLevel'],
  ['rust', { logLevel: 'error' }, ['-o', 'loglevel=debug'], 1, 'typed option logLevel'],
  ['rust', { debug: true }, ['--log-level=info'], 0, 'typed option debug'],
  ['rust', { announceSubmounts: false }, ['--announce-submounts'], 0, 'typed option announceSubmounts'],
  ['rust', { announceSubmounts: false }, ['-o', 'announce_submounts'], 1, 'typed option announceSubmounts'],
  ['rust', { readdirplus: false }, ['-o', 'readdirplus'], 1, 'typed option readdirplus'],
  ['rust', { killprivV2: true }, ['--no-killpriv-v2'], 0, 'typed option killprivV2'],
  ['rust', { killprivV2: true }, ['-o', 'no_killpriv_v2'], 1, 'typed option killprivV2'],
  ['rust', { writeback: false }, ['-o', 'writeback'], 1, 'typed option writeback'],
  ['rust', { threadPoolSize: 1 }, ['--thread-pool-size', '64'], 0, 'typed option threadPoolSize'],
  ['rust', { modcaps: '-mknod' }, ['--modcaps=+sys_admin'], 0, 'typed option modcaps'],
  ['rust', { preserveNoatime: false }, ['--preserve-noatime'], 0, 'typed option preserveNoatime'],
  ['rust', { allowMmap: false }, ['--allow-mmap'], 0, 'typed option allowMmap'],
  // What the library always passes to the Rust daemon.
  ['rust', {}, ['--shared-dir=/'], 0, 'sourcePath'],
  ['rust', {}, ['--shared-dir', '/'], 0, 'sourcePath'],
  ['rust', {}, ['-o', 'source=/'], 1, 'sourcePath'],
  ['rust', {}, ['--cache=always'], 0, 'cache option'],
  ['rust', {}, ['-o', 'cache=always'], 1, 'cache option'],
  ['rust', {}, ['--fd=4'], 0, 'fd 3'],
  ['rust', {}, ['--syslog'], 0, 'syslog option'],
  // clap forms outside the documented ones (each takes effect on the real daemon).
  ['rust', {}, ['-osource=/'], 0, 'two arguments'],
  ['rust', {}, ['-o=source=/'], 0, 'two arguments'],
  ['rust', {}, ['-fosource=/'], 0, 'not an option'],
  ['rust', {}, ['--shared-d=/'], 0, 'not an option'],
  ['rust', {}, ['--tag', '--shared-dir=/'], 0, 'as an option, not as its value'],
];

/** [cli, extraArgs, index, what the message names]: nydusd refuses a second --log-level etc. itself. */
const NYDUS_OVERRIDES = [
  ['virtiofs', ['--log-level', 'debug'], 0, 'logLevel option'],
  ['virtiofs', ['--log-level=trace'], 0, 'logLevel option'],
  ['virtiofs', ['-l', 'trace'], 0, 'logLevel option'],
  ['virtiofs', ['-ltrace'], 0, 'not an option'],
  ['virtiofs', ['--apisock', '/tmp/a.sock'], 0, 'apiSockPath'],
  ['virtiofs', ['-A', '/tmp/a.sock'], 0, 'apiSockPath'],
  ['virtiofs', ['--sock=/tmp/v.sock'], 0, 'sockPath'],
  ['virtiofs', ['--id', '--apisock=/tmp/a.sock'], 0, 'as an option, not as its value'],
  ['flat', ['--log-level', 'debug'], 0, 'logLevel option'],
  ['flat', ['--sock', '/tmp/v.sock'], 0, 'sockPath'],
];

/** start()'s rejection; a daemon that started after all is stopped before the test fails. */
async function refusedStart(d, what) {
  try {
    await d.start();
  } catch (err) {
    return err;
  }
  await d.stop();
  assert.fail(`${what}: started`);
}

/** How a message quotes extraArgs[i]: an -o group with its -o. */
function shown(args, i) {
  return args[i - 1] === '-o' ? `-o ${args[i]}` : args[i];
}

function assertRefusal(err, { policy, args, index, names, what }) {
  assert.ok(err instanceof InvalidOptionError, `${what}: ${err}`);
  assert.equal(err.option, `extraArgs[${index}]`, `${what}: ${err.message}`);
  assert.ok(
    err.message.includes(`'${shown(args, index)}' is refused under extraArgsPolicy '${policy}'`),
    `${what}: names the argument and the policy: ${err.message}`,
  );
  assert.ok(err.message.includes(names), `${what}: names ${names}: ${err.message}`);
  if (names.startsWith('typed option')) {
    assert.ok(err.message.includes("(the operator's); a tenant's arguments cannot re-set it"), err.message);
  }
}

describe('extra arguments cannot re-set what the library or the operator set', () => {
  test(`${OVERRIDES.length} virtiofsd spellings are refused under known and safe, nothing created; verbatim passes them as they are`, async (t) => {
    const dir = tempDir(t, 'xo-');
    const source = path.join(dir, 'src');
    fs.mkdirSync(source);
    const marker = path.join(dir, 'ran');
    const wrappers = {};
    for (const dialect of h.DIALECTS) {
      wrappers[dialect] = script(
        path.join(dir, `virtiofsd-${dialect}`),
        `echo "$@" >> '${marker}'\nexec '${h.virtiofsdPath(dialect)}' "$@"`,
      );
    }
    for (const [dialect, typed, args, index, names, safeNames] of OVERRIDES) {
      for (const policy of POLICIES) {
        const what = `${dialect} ${JSON.stringify(typed)} ${JSON.stringify(args)} under ${policy}`;
        const socketPath = path.join(dir, 'v.sock');
        const d = new Virtiofsd({
          path: wrappers[dialect],
          dialect,
          socketPath,
          sourcePath: source,
          ...typed,
          extraArgs: args,
          extraArgsPolicy: policy,
        });
        const err = await refusedStart(d, what);
        assertRefusal(err, { policy, args, index, names: policy === 'safe' && safeNames ? safeNames : names, what });
        assert.equal(d.pid, 0, what);
        assert.equal(fs.existsSync(socketPath), false, `${what}: no socket file`);
        assert.equal(fs.existsSync(marker), false, `${what}: the daemon was never run`);
      }
      // A trusted caller's arguments are the caller's business: appended as they are.
      const argv = buildVirtiofsdArgs({ dialect, sourcePath: source, ...typed, extraArgs: args });
      assert.deepEqual(argv.slice(-args.length), args, `${dialect} ${JSON.stringify(args)} verbatim`);
    }
    assert.deepEqual(
      fs
        .readdirSync(dir)
        .filter((f) => !f.startsWith('virtiofsd-'))
        .sort(),
      ['src'],
    );
  });

  test(`${NYDUS_OVERRIDES.length} nydusd spellings are refused under known and safe, nothing created; verbatim passes them`, async (t) => {
    const dir = tempDir(t, 'xn-');
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const marker = path.join(dir, 'ran');
    // version is given, so that nothing runs the binary, not even for --version.
    const wrapper = script(path.join(dir, 'nydusd'), `echo "$@" >> '${marker}'\nexit 1`);
    for (const [cli, args, index, names] of NYDUS_OVERRIDES) {
      for (const policy of POLICIES) {
        const what = `nydusd ${cli} ${JSON.stringify(args)} under ${policy}`;
        const sockPath = path.join(dir, 'v.sock');
        const apiSockPath = path.join(dir, 'a.sock');
        const d = new Nydusd({
          path: wrapper,
          version: cli === 'virtiofs' ? '2.2.3' : '1.1.2',
          sockPath,
          apiSockPath,
          sourcePath: share,
          logLevel: 'warn',
          extraArgs: args,
          extraArgsPolicy: policy,
        });
        const err = await refusedStart(d, what);
        assertRefusal(err, { policy, args, index, names, what });
        assert.equal(d.pid, 0, what);
        assert.equal(fs.existsSync(sockPath) || fs.existsSync(apiSockPath), false, `${what}: no socket file`);
        assert.equal(fs.existsSync(marker), false, `${what}: nydusd was never run`);
      }
      const argv = buildNydusdArgs({ sockPath: '/v', apiSockPath: '/a', cli, extraArgs: args });
      assert.deepEqual(argv.slice(-args.length), args, `${JSON.stringify(args)} verbatim`);
    }
  });

  test("under 'safe' no extra argument may turn on extended attributes; under 'known' they pass when the operator left them unset", () => {
    for (const [dialect, args] of [
      ['legacy', ['-o', 'xattr']],
      ['legacy', ['-o', `xattrmap=${OPEN}`]],
      ['legacy', ['-o', 'posix_acl']],
      ['legacy', ['-o', 'security_label']],
      ['rust', ['--xattr']],
      ['rust', ['--xattrmap', OPEN]],
      ['rust', ['--posix-acl']],
      ['rust', ['--security-label']],
      ['rust', ['-o', 'xattr']],
      ['rust', ['-o', `xattrmap=${OPEN}`]],
      ['rust', ['-o', 'posix_acl']],
      ['rust', ['-o', 'security_label']],
    ]) {
      const what = `${dialect} ${JSON.stringify(args)}`;
      assert.throws(
        () => buildVirtiofsdArgs({ dialect, sourcePath: '/s', extraArgs: args, extraArgsPolicy: 'safe' }),
        (err) => {
          assert.ok(err instanceof InvalidOptionError, `${what}: ${err}`);
          assert.equal(err.option, `extraArgs[${args[0] === '-o' ? 1 : 0}]`, what);
          assert.match(err.message, /security\.capability|security\.\* and trusted\.\*/, what);
          return true;
        },
      );
      const argv = buildVirtiofsdArgs({ dialect, sourcePath: '/s', extraArgs: args, extraArgsPolicy: 'known' });
      assert.deepEqual(argv.slice(-args.length), args, what);
    }
    // Turning them off narrows what the guest reaches: a tenant may, unless the operator set them.
    for (const [dialect, args] of [
      ['legacy', ['-o', 'no_xattr', '-o', 'no_posix_acl', '-o', 'no_security_label']],
      ['rust', ['-o', 'no_xattr', '-o', 'no_posix_acl', '-o', 'no_security_label']],
    ]) {
      const argv = buildVirtiofsdArgs({ dialect, sourcePath: '/s', extraArgs: args, extraArgsPolicy: 'safe' });
      assert.deepEqual(argv.slice(-args.length), args, dialect);
    }
  });

  test("what the operator did not set stays open to a tenant under 'known' (the policy refuses re-sets, not options)", () => {
    assert.deepEqual(
      buildVirtiofsdArgs({
        dialect: 'rust',
        sourcePath: '/s',
        xattrmap: GUARD,
        extraArgs: ['--thread-pool-size', '4', '--log-level=warn', '-o', 'no_killpriv_v2'],
        extraArgsPolicy: 'known',
      }).slice(-5),
      ['--thread-pool-size', '4', '--log-level=warn', '-o', 'no_killpriv_v2'],
    );
    assert.deepEqual(
      buildVirtiofsdArgs({
        dialect: 'legacy',
        sourcePath: '/s',
        xattr: true,
        extraArgs: ['-o', 'log_level=warn', '--thread-pool-size=4'],
        extraArgsPolicy: 'safe',
      }).slice(-3),
      ['-o', 'log_level=warn', '--thread-pool-size=4'],
    );
  });
});

// -------------------------------------------------------------------------------------------
// Real starts under 'verbatim': what each refused spelling would have done.

/** Stop d after t, and SIGKILL what is left of its process group. */
function track(t, d) {
  const pgids = new Set();
  const start = d.start.bind(d);
  d.start = async (onQuit) => {
    const pid = await start(onQuit);
    pgids.add(pid);
    return pid;
  };
  t.after(async () => {
    await d.stop().catch(() => {});
    for (const st of h.liveMembersOfGroups(pgids)) {
      try {
        process.kill(st.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });
}

/** A world: an operator's shared directory and a tenant's other one, both real directories. */
function world(t) {
  const dir = tempDir(t, 'xr-');
  const operator = path.join(dir, 'operator');
  const tenant = path.join(dir, 'tenant');
  fs.mkdirSync(operator);
  fs.mkdirSync(tenant);
  return { dir, operator, tenant, socketPath: path.join(dir, 'v.sock') };
}

/**
 * Start the real `dialect` daemon with `options` (verbatim), connect as the VMM (the legacy
 * daemon sandboxes itself only then), and return the directory it serves — its root under the
 * chroot sandbox — and its output lines; stop it.
 */
async function servedRoot(t, dialect, options) {
  const w = world(t);
  const { logger, records } = captureLogger();
  const d = new Virtiofsd({
    path: h.virtiofsdPath(dialect),
    socketPath: w.socketPath,
    sourcePath: w.operator,
    logger,
    ...options(w),
  });
  track(t, d);
  const pid = await d.start();
  const client = await connectVhostUser(w.socketPath, { timeoutMs: 5000 });
  let root;
  try {
    assert.ok((await client.getFeatures()) > 0n, 'it serves');
    root = fs.readlinkSync(`/proc/${pid}/root`);
  } finally {
    client.close();
  }
  await d.stop();
  const lines = records
    .filter((r) => typeof r.line === 'string' || typeof r.msg === 'string')
    .map((r) => r.line ?? r.msg);
  return { root, lines, w };
}

describe('under verbatim, the refused spellings do override the operator (so refusing them matters)', () => {
  test("legacy: -o source= after the library's -o source= serves the tenant's directory", async (t) => {
    const control = await servedRoot(t, 'legacy', () => ({ sandbox: 'chroot' }));
    assert.equal(control.root, control.w.operator, 'without extra arguments it serves sourcePath');
    const { root, w } = await servedRoot(t, 'legacy', (x) => ({
      sandbox: 'chroot',
      extraArgs: ['-o', `source=${x.tenant}`],
    }));
    assert.equal(root, w.tenant);
    const escaped = await servedRoot(t, 'legacy', (x) => ({
      sandbox: 'chroot',
      extraArgs: ['-o', `sour\\ce=${x.tenant}`],
    }));
    assert.equal(escaped.root, escaped.w.tenant, "fuse_opt unescapes '-o sour\\ce=': it is source");
  });

  for (const extra of [(x) => [`--shared-dir=${x.tenant}`], (x) => ['-o', `source=${x.tenant}`]]) {
    test(`rust: ${JSON.stringify(extra({ tenant: 'T' }))} after the library's --shared-dir serves the tenant's directory`, async (t) => {
      const { root, w } = await servedRoot(t, 'rust', (x) => ({ sandbox: 'chroot', extraArgs: extra(x) }));
      assert.equal(root, w.tenant);
    });
  }

  test("rust: --sandbox=none after the operator's sandbox: 'chroot' leaves the daemon unconfined", async (t) => {
    const control = await servedRoot(t, 'rust', () => ({ sandbox: 'chroot' }));
    assert.equal(control.root, control.w.operator);
    const { root } = await servedRoot(t, 'rust', () => ({ sandbox: 'chroot', extraArgs: ['--sandbox=none'] }));
    assert.equal(root, '/');
  });

  test("legacy: -o xattr re-sets the operator's xattr: false (posix_acl without xattr makes it exit)", async (t) => {
    // The operator's -o no_xattr holds against -o posix_acl alone: the daemon refuses to start.
    const w = world(t);
    const d = new Virtiofsd({
      path: h.virtiofsdPath('legacy'),
      socketPath: w.socketPath,
      sourcePath: w.operator,
      xattr: false,
      extraArgs: ['-o', 'posix_acl'],
      logger: captureLogger().logger,
    });
    track(t, d);
    await assert.rejects(
      d.start(),
      (err) => err instanceof DaemonStartError && err.lastLines.some((l) => /xattrs are disabled/.test(l)),
    );
    // ...and a tenant's later -o xattr turns them back on: now it starts and serves.
    await servedRoot(t, 'legacy', () => ({ xattr: false, extraArgs: ['-o', 'posix_acl', '-o', 'xattr'] }));
  });

  test("legacy: the last -o xattrmap is the only one parsed, so a tenant's replaces the operator's", async (t) => {
    const w = world(t);
    const d = new Virtiofsd({
      path: h.virtiofsdPath('legacy'),
      socketPath: w.socketPath,
      sourcePath: w.operator,
      xattrmap: GUARD,
      extraArgs: ['-o', 'xattrmap=:bogus:'],
      logger: captureLogger().logger,
    });
    track(t, d);
    await assert.rejects(
      d.start(),
      (err) => err instanceof DaemonStartError && err.lastLines.some((l) => /parse_xattrmap/.test(l)),
      "the tenant's (bad) map is the one parsed",
    );
    // The operator's map is never even parsed: a broken one goes unnoticed behind the tenant's.
    await servedRoot(t, 'legacy', () => ({ xattrmap: ':bogus:', extraArgs: ['-o', `xattrmap=${OPEN}`] }));
  });

  for (const [dialect, extra] of [
    ['legacy', ['-d']],
    ['legacy', ['-o', 'debug']],
    ['rust', ['-d']],
    ['rust', ['-o', 'loglevel=debug']],
  ]) {
    test(`${dialect}: ${JSON.stringify(extra)} re-sets the operator's logLevel: 'error'`, async (t) => {
      const waiting = (lines) => lines.some((l) => l.includes('Waiting for vhost-user socket connection'));
      const control = await servedRoot(t, dialect, () => ({ logLevel: 'error' }));
      assert.equal(waiting(control.lines), false, `at error, no info line: ${JSON.stringify(control.lines)}`);
      const { lines } = await servedRoot(t, dialect, () => ({ logLevel: 'error', extraArgs: extra }));
      assert.ok(waiting(lines), `the tenant's level is in effect: ${JSON.stringify(lines)}`);
    });
  }
});

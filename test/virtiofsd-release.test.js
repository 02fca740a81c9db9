'use strict';
/**
 * Options checked against the installed Rust virtiofsd's release (issue 18): each option a
 * release added is refused by name, before anything is created, when the binary's
 * `--version` (or `--print-capabilities`, where it lists features) says it lacks it; at the
 * release that added it, the real daemon starts with the flag in its argv (read from /proc).
 *
 * The "older releases" are small shell stand-ins that answer `--version` and
 * `--print-capabilities` as that release does (before 1.11.1 the latter fails without
 * --shared-dir, as clap did there) and exec the real Rust virtiofsd (1.13.2 here) otherwise;
 * each records how it was called, so a test sees that the refusal ran nothing but the probe.
 *
 * Run: node --test --test-concurrency=1 test/virtiofsd-release.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const {
  Virtiofsd,
  buildVirtiofsdArgs,
  probeVirtiofsd,
  detectDialect,
  InvalidOptionError,
  RUST_VIRTIOFSD_SINCE,
} = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const { captureLogger, rejection, script, tempDir } = require('./helpers/util.js');

const FEATURES = ['migrate-precopy', 'separate-options'];

/**
 * A stand-in for Rust virtiofsd `version`: answers --version and --print-capabilities as that
 * release does (`features`: what it lists; default: what upstream printed at that release),
 * execs the real daemon otherwise. Every call is appended to `<file>.calls`.
 */
function olderRust(dir, version, { features } = {}) {
  const file = path.join(dir, `virtiofsd-${version}-${Math.random().toString(36).slice(2, 8)}`);
  const listed = features ?? (cmp(version, '1.11.1') >= 0 ? FEATURES : null);
  const caps =
    listed === null
      ? // clap, before 1.11.1: --shared-dir is required even for --print-capabilities.
        `echo 'error: The following required arguments were not provided:\n    --shared-dir <shared-dir>' >&2; exit 2`
      : `printf '{\\n  "type": "fs",\\n  "features": [\\n${listed.map((f) => `    "${f}"`).join(',\\n')}\\n  ]\\n}\\n'; exit 0`;
  script(
    file,
    [
      `echo "$*" >> "$0.calls"`,
      'case "$1" in',
      `  --version) echo 'virtiofsd ${version}'; exit 0 ;;`,
      `  --print-capabilities) ${caps} ;;`,
      'esac',
      `exec '${h.virtiofsdPath('rust')}' "$@"`,
    ].join('\n'),
  );
  return file;
}

function cmp(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

const quiet = () => captureLogger().logger;

function calls(bin) {
  try {
    return fs.readFileSync(`${bin}.calls`, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The daemon's argv as the kernel has it. */
function cmdline(pid) {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
}

/**
 * The argv of the real daemon serving `socketPath` (pid `pid`): read once it answers a vhost-user
 * GET_FEATURES, so never the stand-in's shell before its exec (a quiet daemon is started at once).
 */
async function servingArgv(socketPath, pid) {
  const client = await connectVhostUser(socketPath, { timeoutMs: 5000 });
  try {
    assert.ok((await client.getFeatures()) > 0n, 'the daemon answers GET_FEATURES');
    return cmdline(pid);
  } finally {
    client.close();
  }
}

function setup(t) {
  const dir = tempDir(t);
  const source = path.join(dir, 'src');
  fs.mkdirSync(source);
  let n = 0;
  return { dir, source, socket: () => path.join(dir, `v${n++}.sock`) };
}

/** Stop d after t, whatever happened. */
function track(t, d) {
  t.after(() => d.stop().catch(() => {}));
  return d;
}

/**
 * [option, value, the argument it needs, the first release with it, the release before it].
 * Every Rust flag or value of a typed option (or of cache/syslog) that is newer than 1.0.0.
 */
const GATED = [
  ['killprivV2', false, '--no-killpriv-v2', '1.1.0', '1.0.0'],
  ['seccomp', 'log', '--seccomp=log', '1.1.0', '1.0.0'],
  ['inodeFileHandles', 'mandatory', '--inode-file-handles=mandatory', '1.1.0', '1.0.0'],
  ['logLevel', 'off', '--log-level=off', '1.1.0', '1.0.0'],
  ['posixAcl', true, '--posix-acl', '1.2.0', '1.1.0'],
  ['modcaps', '-mknod', '--modcaps=-mknod', '1.2.0', '1.1.0'],
  ['inodeFileHandles', 'prefer', '--inode-file-handles=prefer', '1.2.0', '1.1.0'],
  ['killprivV2', true, '--killpriv-v2', '1.3.0', null], // before 1.3.0 it was on by default: nothing to refuse
  ['securityLabel', true, '--security-label', '1.4.0', '1.3.0'],
  ['announceSubmounts', false, '--no-announce-submounts', '1.6.0', null], // off by default before 1.6.0
  ['preserveNoatime', true, '--preserve-noatime', '1.7.0', '1.6.1'],
  ['cache', 'metadata', '--cache=metadata', '1.8.0', '1.7.2'],
  ['allowMmap', true, '--allow-mmap', '1.11.0', '1.10.1'],
  ['migrationMode', 'find-paths', '--migration-mode=find-paths', '1.11.0', '1.10.1'],
  ['migrationOnError', 'guest-error', '--migration-on-error=guest-error', '1.11.0', '1.10.1'],
  ['migrationVerifyHandles', true, '--migration-verify-handles', '1.11.0', '1.10.1'],
  ['migrationConfirmPaths', true, '--migration-confirm-paths', '1.11.0', '1.10.1'],
  ['migrationMode', 'file-handles', '--migration-mode=file-handles', '1.12.0', '1.11.1'],
  ['readonly', true, '--readonly', '1.13.0', '1.12.0'],
];

describe('the release table', () => {
  test('every gated argument of a typed option is in RUST_VIRTIOFSD_SINCE at that release', () => {
    for (const [, , arg, since] of GATED) {
      const flag = arg.split('=')[0];
      const listed = RUST_VIRTIOFSD_SINCE[arg] ?? RUST_VIRTIOFSD_SINCE[flag];
      assert.equal(listed, since, arg);
    }
  });

  test('the pure builder refuses what a release lacks, naming option, version and first release', () => {
    for (const [name, value, arg, since, before] of [...GATED, ['syslog', true, '--syslog', '1.1.0', '1.0.0']]) {
      const input = { dialect: 'rust', sourcePath: '/s', [name]: value };
      const at = buildVirtiofsdArgs({ ...input, release: { version: since, capabilities: null } });
      assert.ok(at.includes(arg), `${arg} at ${since}: ${JSON.stringify(at)}`);
      if (before === null) continue;
      assert.throws(
        () => buildVirtiofsdArgs({ ...input, release: { version: before, capabilities: null, binary: '/x' } }),
        (err) => {
          assert.ok(err instanceof InvalidOptionError, String(err));
          assert.equal(err.option, name);
          assert.ok(err.message.includes(`'/x' is ${before}`), err.message);
          assert.ok(err.message.includes(`from ${since} on`), err.message);
          return true;
        },
      );
    }
  });

  test('a value that was the default of an older release is spelled as nothing there', () => {
    const base = { dialect: 'rust', sourcePath: '/s' };
    const rel = (version) => ({ version, capabilities: null });
    assert.ok(
      !buildVirtiofsdArgs({ ...base, announceSubmounts: false, release: rel('1.5.1') })
        .join()
        .includes('announce'),
    );
    assert.ok(
      !buildVirtiofsdArgs({ ...base, killprivV2: true, release: rel('1.2.0') })
        .join()
        .includes('killpriv'),
    );
    assert.ok(buildVirtiofsdArgs({ ...base, killprivV2: false, release: rel('1.2.0') }).includes('--no-killpriv-v2'));
  });

  test('without a known release (the pure builder without release) nothing is refused for it', () => {
    const args = buildVirtiofsdArgs({
      dialect: 'rust',
      sourcePath: '/s',
      readonly: true,
      migrationMode: 'file-handles',
    });
    assert.ok(args.includes('--readonly') && args.includes('--migration-mode=file-handles'));
  });

  test('migration handles/paths checks contradict file-handles mode, as the daemon says (1.13)', () => {
    for (const name of ['migrationVerifyHandles', 'migrationConfirmPaths']) {
      assert.throws(
        () => buildVirtiofsdArgs({ dialect: 'rust', sourcePath: '/s', migrationMode: 'file-handles', [name]: true }),
        (err) => err instanceof InvalidOptionError && err.option === name,
      );
    }
  });
});

describe('probeVirtiofsd: what the installed daemons say', () => {
  for (const dialect of ['legacy', 'rust']) {
    test(`${dialect}: dialect, version and --print-capabilities features as the binary prints them`, async () => {
      const bin = h.virtiofsdPath(dialect);
      const facts = await probeVirtiofsd(bin);
      const run = (arg) => execFileSync(bin, [arg], { encoding: 'utf8' });
      assert.equal(facts.path, bin);
      assert.equal(facts.dialect, dialect);
      assert.equal(facts.version, /\d+\.\d+\.\d+/.exec(run('--version').split('\n')[0])[0]);
      assert.deepEqual(facts.capabilities, JSON.parse(run('--print-capabilities')).features ?? []);
    });
  }

  test('an older release: its version, and null capabilities where --print-capabilities fails', async (t) => {
    const { dir } = setup(t);
    const bin = olderRust(dir, '1.10.1');
    assert.deepEqual(await probeVirtiofsd(bin), { path: bin, dialect: 'rust', version: '1.10.1', capabilities: null });
    assert.deepEqual((await probeVirtiofsd(olderRust(dir, '1.12.0'))).capabilities, FEATURES);
  });

  test('one probe per binary: concurrent starts share it, a changed binary is asked again', async (t) => {
    const e = setup(t);
    const bin = olderRust(e.dir, '1.13.2');
    const ds = [0, 1, 2].map(() =>
      track(
        t,
        new Virtiofsd({ path: bin, socketPath: e.socket(), sourcePath: e.source, logger: captureLogger().logger }),
      ),
    );
    await Promise.all(ds.map((d) => d.start()));
    await Promise.all(ds.map((d) => d.stop()));
    const probes = () => calls(bin).filter((c) => c === '--version' || c === '--print-capabilities');
    assert.deepEqual(probes(), ['--version', '--print-capabilities']);
    assert.equal(await detectDialect(bin), 'rust');
    assert.equal(probes().length, 2, 'detectDialect is answered from the same probe');
    fs.appendFileSync(bin, '# changed\n'); // another size: another binary
    assert.equal((await probeVirtiofsd(bin)).version, '1.13.2');
    assert.deepEqual(probes(), ['--version', '--print-capabilities', '--version', '--print-capabilities']);
  });

  test("dialect: 'rust' given and no option newer than 1.0.0: the binary is not probed at all", async (t) => {
    const e = setup(t);
    const bin = olderRust(e.dir, '1.0.0');
    const d = track(
      t,
      new Virtiofsd({
        path: bin,
        dialect: 'rust',
        socketPath: e.socket(),
        sourcePath: e.source,
        logger: quiet(),
        xattr: true,
      }),
    );
    await d.start();
    await d.stop();
    assert.deepEqual(
      calls(bin).filter((c) => c.startsWith('--version') || c.startsWith('--print')),
      [],
    );
  });
});

describe('start() against an older Rust virtiofsd', () => {
  for (const [name, value, arg, since, before] of GATED) {
    const label = `${name}: ${JSON.stringify(value)}`;
    if (before !== null) {
      test(`${label} is refused by ${before} (before anything is created), naming ${since}`, async (t) => {
        const e = setup(t);
        const bin = olderRust(e.dir, before);
        for (const dialect of ['auto', 'rust']) {
          const socketPath = e.socket();
          const d = track(
            t,
            new Virtiofsd({ path: bin, dialect, socketPath, sourcePath: e.source, logger: quiet(), [name]: value }),
          );
          const err = await rejection(d.start(), label);
          assert.ok(err instanceof InvalidOptionError, `${dialect}: ${err}`);
          assert.equal(err.option, name);
          assert.ok(err.message.includes(`is ${before}`), err.message);
          assert.ok(err.message.includes(since), err.message);
          assert.ok(err.message.includes(arg.split('=')[0]), err.message);
          assert.equal(fs.existsSync(socketPath), false, 'no socket file');
          assert.equal(d.pid, 0);
        }
        assert.deepEqual(
          calls(bin).filter((c) => c !== '--version' && c !== '--print-capabilities'),
          [],
          'nothing but the probe ran',
        );
      });
    }
    test(`${label} starts ${since} (the release that added it) with ${arg} in its argv`, async (t) => {
      const e = setup(t);
      const bin = olderRust(e.dir, since);
      const socketPath = e.socket();
      const d = track(
        t,
        new Virtiofsd({ path: bin, socketPath, sourcePath: e.source, logger: quiet(), [name]: value }),
      );
      const argv = await servingArgv(socketPath, await d.start());
      assert.ok(argv.includes(arg), `${arg} in ${JSON.stringify(argv)}`);
      assert.ok(!argv.includes(bin), `the real daemon, not the stand-in: ${JSON.stringify(argv)}`);
      await d.stop();
    });
  }

  test('announceSubmounts: false and killprivV2: true start a release older than their flag, with no flag', async (t) => {
    const e = setup(t);
    for (const [opts, version, absent] of [
      [{ announceSubmounts: false }, '1.5.1', 'announce'],
      [{ killprivV2: true }, '1.2.0', 'killpriv'],
    ]) {
      const socketPath = e.socket();
      const d = track(
        t,
        new Virtiofsd({ path: olderRust(e.dir, version), socketPath, sourcePath: e.source, logger: quiet(), ...opts }),
      );
      const argv = await servingArgv(socketPath, await d.start());
      assert.ok(!argv.join(' ').includes(absent), JSON.stringify(argv));
      await d.stop();
    }
  });

  test('where the daemon lists its features, the feature decides the migration options', async (t) => {
    const e = setup(t);
    // A 1.13.2 build without migrate-precopy (a distribution that cut it): refused.
    const cut = olderRust(e.dir, '1.13.2', { features: ['separate-options'] });
    const d1 = track(
      t,
      new Virtiofsd({
        path: cut,
        socketPath: e.socket(),
        sourcePath: e.source,
        logger: quiet(),
        migrationOnError: 'abort',
      }),
    );
    const err = await rejection(d1.start(), 'no migrate-precopy');
    assert.ok(err instanceof InvalidOptionError && err.option === 'migrationOnError', String(err));
    assert.ok(err.message.includes('migrate-precopy'), err.message);
    // A 1.10.1 that lists migrate-precopy (a backport): accepted.
    const backport = olderRust(e.dir, '1.10.1', { features: ['migrate-precopy'] });
    const socketPath = e.socket();
    const d2 = track(
      t,
      new Virtiofsd({ path: backport, socketPath, sourcePath: e.source, logger: quiet(), migrationOnError: 'abort' }),
    );
    assert.ok((await servingArgv(socketPath, await d2.start())).includes('--migration-on-error=abort'));
    await d2.stop();
  });

  test("extraArgs under 'known' hold to the installed release's flags; 'verbatim' stays the caller's", async (t) => {
    const e = setup(t);
    const bin = olderRust(e.dir, '1.8.0');
    const socketPath = e.socket();
    const d = track(
      t,
      new Virtiofsd({
        path: bin,
        socketPath,
        sourcePath: e.source,
        logger: quiet(),
        extraArgs: ['--tag=fs0'],
        extraArgsPolicy: 'known',
      }),
    );
    const err = await rejection(d.start(), '--tag on 1.8.0');
    assert.ok(err instanceof InvalidOptionError && err.option === 'extraArgs[0]', String(err));
    assert.ok(/--tag.*1\.9\.0.*is 1\.8\.0/.test(err.message), err.message);
    assert.equal(fs.existsSync(socketPath), false);
    // Verbatim: the caller's word goes to the daemon (the real one behind the stand-in knows --tag).
    const v = track(
      t,
      new Virtiofsd({ path: bin, socketPath, sourcePath: e.source, logger: quiet(), extraArgs: ['--tag=fs0'] }),
    );
    assert.ok((await servingArgv(socketPath, await v.start())).includes('--tag=fs0'));
    await v.stop();
  });

  test('the legacy daemon refuses every migration option naming the dialect (false of a flag is its behaviour)', () => {
    for (const [name, value] of [
      ['migrationMode', 'find-paths'],
      ['migrationOnError', 'abort'],
      ['migrationVerifyHandles', true],
      ['migrationConfirmPaths', true],
    ]) {
      assert.throws(
        () => buildVirtiofsdArgs({ dialect: 'legacy', sourcePath: '/s', [name]: value }),
        (err) => err instanceof InvalidOptionError && err.option === name && /legacy C virtiofsd/.test(err.message),
      );
    }
    assert.equal(
      buildVirtiofsdArgs({ dialect: 'legacy', sourcePath: '/s', migrationVerifyHandles: false })
        .join(' ')
        .includes('migration'),
      false,
    );
  });
});

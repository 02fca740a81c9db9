'use strict';
/**
 * Desktop apps and Electron run as the logged-in user, never root (issue 17). Here the library
 * runs as a real unprivileged user (users.js's createUser; the library in a child node process of
 * that user, helpers/as-user.js) and, for the root mechanism, as root in this process:
 * - the legacy C virtiofsd refused before anything runs, from the effective uid (path, dialect,
 *   the lookup), the Rust one found through QEMU's vhost-user descriptors and run as the user;
 * - the socket: the default in the user's runtime directory (and its fallback), and a socket in
 *   /tmp that stays the user's instead of failing with EPERM;
 * - each idmap form in the daemon's argv, read from /proc/<pid>/cmdline: --uid-map/--gid-map as a
 *   user, --translate-uid/--translate-gid as root, with the gaps forbidden and squashed;
 * - every refusal of idmap and of cgroups as a user, typed and before anything is spawned, and an
 *   id mapping failure of the daemon itself explained;
 * - unknown option keys, for every constructor, mount and adopt.
 * The guest's view of each idmap form is test/guest-idmap.test.js. Needs root (CI runs as root),
 * the uidmap package and both virtiofsd dialects (scripts/setup.sh).
 *
 * Run: node --test --test-concurrency=1 test/desktop.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');

const lib = require('../dist/index.js');
const { Virtiofsd, Nydusd, NydusClient, InvalidOptionError } = lib;
const { virtiofsdPath } = require('./helpers/daemons.js');
const { addSubIds, createUser, runAs } = require('./helpers/users.js');
const { freshCgroup } = require('./helpers/cgroups.js');
const { rejection, tempDir } = require('./helpers/util.js');

const AS_USER = path.join(__dirname, 'helpers', 'as-user.js');
const silent = pino({ level: 'silent' });
const ID_LIMIT = 4294967295;

/** Run `body` (an async function body given `lib`, `require`) as `user`: `{ value }` or `{ error }`. */
async function asUser(user, body, env = {}) {
  const r = await runAs(user, process.execPath, [AS_USER, body], { env, timeoutMs: 60000 });
  const line = r.stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`as-user.js printed no result (exit ${r.code ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
}

/**
 * The body that starts a Virtiofsd with `options` as the user and reports the daemon (pid, uid,
 * argv from /proc/<pid>/cmdline), its socket (path, owner) and the socket's directory, then
 * stops it and says whether the socket file is gone.
 */
function startBody(options) {
  return `
    const fs = require('node:fs');
    const path = require('node:path');
    const d = new lib.Virtiofsd(${JSON.stringify(options)});
    const pid = await d.start();
    try {
      const argv = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').slice(0, -1);
      const sock = fs.statSync(d.socketPath);
      const dir = fs.statSync(path.dirname(d.socketPath));
      return {
        pid, argv, uid: fs.statSync('/proc/' + pid).uid, socketPath: d.socketPath,
        socket: { uid: sock.uid, gid: sock.gid, isSocket: sock.isSocket() },
        dir: { uid: dir.uid, mode: dir.mode & 0o7777 },
      };
    } finally {
      await d.stop();
    }`;
}

/** The legacy C daemon's own binary (an ELF, never a wrapper script): Debian 12's, or setup.sh's copy of it. */
function legacyElf() {
  const candidates = [
    '/usr/lib/qemu/virtiofsd',
    path.join(__dirname, '..', '.cache', 'virtiofsd-legacy', 'usr', 'lib', 'qemu', 'virtiofsd'),
  ];
  const found = candidates.find((p) => fs.existsSync(p) && lib.isLegacyVirtiofsd(p));
  if (!found) throw new Error(`no legacy C virtiofsd binary among ${candidates.join(', ')}; run scripts/setup.sh`);
  return found;
}

/** A share the user owns, in its home. */
function userShare(user, name = 'share') {
  const dir = path.join(user.home, name);
  fs.mkdirSync(dir);
  fs.chownSync(dir, user.uid, user.gid);
  return dir;
}

/** A 0700 directory of the user's, in its home (a runtime directory, a socket directory). */
function userDir(user, name) {
  const dir = path.join(user.home, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chownSync(dir, user.uid, user.gid);
  return dir;
}

/** Write `files` ({ name: content }) into the user's $XDG_CONFIG_HOME/qemu/vhost-user; returns XDG_CONFIG_HOME. */
function userDescriptors(user, files) {
  const config = path.join(user.home, '.config');
  const dir = path.join(config, 'qemu', 'vhost-user');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  for (const d of [config, path.join(config, 'qemu'), dir, ...Object.keys(files).map((n) => path.join(dir, n))]) {
    fs.chownSync(d, user.uid, user.gid);
  }
  return config;
}

/** The system's descriptor file names: an empty file of each name in the user's directory hides them all. */
function systemDescriptorNames() {
  const names = new Set();
  for (const dir of ['/usr/share/qemu/vhost-user', '/etc/qemu/vhost-user']) {
    try {
      for (const n of fs.readdirSync(dir)) if (n.endsWith('.json')) names.add(n);
    } catch {
      // missing: nothing to hide
    }
  }
  return [...names];
}

const descriptor = (binary) => JSON.stringify({ description: 'test', type: 'fs', binary });

/** Assert `r` is the typed refusal `{ error }` for `option` whose message matches every pattern. */
function assertRefused(r, option, ...patterns) {
  assert.ok(r.error, `expected a refusal for ${option}, got ${JSON.stringify(r.value)}`);
  assert.equal(r.error.code, 'ERR_INVALID_OPTION', r.error.message);
  assert.equal(r.error.option, option, r.error.message);
  for (const p of patterns) assert.match(r.error.message, p);
}

/** Give root a subordinate range, first in /etc/subuid and /etc/subgid, for 'auto' as root (removed after t). */
function rootSubIds(t) {
  const start = 2100000000 + Math.floor(Math.random() * 1000) * 65536;
  addSubIds(t, 'root', start, 65536);
  const host = lib.readIdmapHost();
  assert.deepEqual(host.subuid[0], { start, count: 65536 });
  return { uid: host.subuid[0], gid: host.subgid[0] };
}

/** Start a Virtiofsd as root in this process, return the daemon's argv from /proc, stop it. */
async function rootArgv(t, options) {
  const dir = tempDir(t);
  const share = path.join(dir, 'share');
  fs.mkdirSync(share);
  const d = new Virtiofsd({
    path: virtiofsdPath('rust'),
    socketPath: path.join(dir, 'v.sock'),
    sourcePath: share,
    logger: silent,
    ...options,
  });
  t.after(() => d.stop());
  const pid = await d.start();
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  await d.stop();
  return argv;
}

describe('the legacy C virtiofsd as a user: refused before anything runs, from the effective uid', () => {
  test('path naming it, dialect: legacy, and a wrapper whose --version prints nothing: typed errors that say how to get the Rust one; no socket made', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const sock = path.join(user.home, 'a.sock');

    const byPath = await asUser(user, startBody({ path: legacyElf(), sourcePath: share, socketPath: sock }));
    assertRefused(
      byPath,
      'path',
      /is the legacy C virtiofsd of QEMU 7\.2 and older, which runs only as root/,
      new RegExp(`as uid ${user.uid} it fails before doing anything, even for --version`),
      /apt install virtiofsd/,
      /Nothing was started/,
    );
    // Spawned, it would have said "setgroups() failed" (ERR_DAEMON_EXITED) or left --version unreadable.
    assert.doesNotMatch(byPath.error.message, /setgroups|--version output/);

    // The caller's word: not even the (Rust) binary is asked.
    const byDialect = await asUser(
      user,
      startBody({ path: virtiofsdPath('rust'), dialect: 'legacy', sourcePath: share, socketPath: sock }),
    );
    assertRefused(byDialect, 'dialect', /'legacy' asks for the legacy C virtiofsd/, /Leave dialect unset/);

    // A wrapper script is not recognised without running it: its --version, run as the user, prints
    // nothing, and the error says why that happens with the legacy daemon.
    const wrapper = path.join(user.home, 'virtiofsd-wrapper');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${legacyElf()} "$@"\n`, { mode: 0o755 });
    const byWrapper = await asUser(user, startBody({ path: wrapper, sourcePath: share, socketPath: sock }));
    assertRefused(
      byWrapper,
      'dialect',
      /cannot tell which virtiofsd/,
      /prints nothing at all as uid \d+ \(it runs only as root\)/,
    );

    assert.equal(fs.existsSync(sock), false, 'no socket file was made');
  });

  test("the lookup reads QEMU's vhost-user descriptors (the user's override the system's by name), prefers the Rust daemon, and refuses the legacy one when it is all there is", async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const rust = virtiofsdPath('rust');
    const legacy = legacyElf();
    const hideSystem = Object.fromEntries(systemDescriptorNames().map((n) => [n, '']));
    const find = `return lib.findVirtiofsd(undefined, ${JSON.stringify([legacy])}, process.geteuid());`;

    // Only the legacy daemon: named by a descriptor and on the well-known list.
    const onlyLegacy = userDescriptors(user, { ...hideSystem, '10-old.json': descriptor(legacy) });
    const refused = await asUser(user, find, { XDG_CONFIG_HOME: onlyLegacy });
    assertRefused(
      refused,
      'path',
      new RegExp(`'${legacy}' \\(named by ${onlyLegacy}/qemu/vhost-user/10-old\\.json, the only virtiofsd found\\)`),
      /runs only as root/,
      /apt install virtiofsd/,
    );

    // Add the Rust one after it in sort order: it is chosen all the same.
    userDescriptors(user, { '20-rust.json': descriptor(rust) });
    const chosen = await asUser(user, find, { XDG_CONFIG_HOME: onlyLegacy });
    assert.deepEqual(chosen.value, {
      binary: rust,
      from: `named by ${onlyLegacy}/qemu/vhost-user/20-rust.json`,
      legacy: false,
    });

    // An empty descriptor is skipped (the system's were hidden that way above).
    userDescriptors(user, { '20-rust.json': '' });
    assertRefused(await asUser(user, find, { XDG_CONFIG_HOME: onlyLegacy }), 'path', /the only virtiofsd found/);

    // Root may run the legacy daemon: it is taken when it is all there is, the Rust one before it
    // otherwise. (Root's own configuration: the user's files are not root's to trust.)
    const rootConfig = path.join(tempDir(t), 'config');
    const rootDir = path.join(rootConfig, 'qemu', 'vhost-user');
    fs.mkdirSync(rootDir, { recursive: true });
    for (const [name, content] of Object.entries({ ...hideSystem, '10-old.json': descriptor(legacy) })) {
      fs.writeFileSync(path.join(rootDir, name), content);
    }
    const env = { XDG_CONFIG_HOME: rootConfig };
    assert.deepEqual(lib.findVirtiofsd(undefined, [legacy], 0, env), {
      binary: legacy,
      from: `named by ${rootDir}/10-old.json`,
      legacy: true,
    });
    fs.writeFileSync(path.join(rootDir, '20-rust.json'), descriptor(rust));
    assert.equal(lib.findVirtiofsd(undefined, [legacy], 0, env).binary, rust);
    assert.deepEqual(
      lib.vhostUserBackends('fs', env).map((b) => [path.basename(b.file), b.binary]),
      [
        ['10-old.json', legacy],
        ['20-rust.json', rust],
      ],
    );

    // The API as the user: with the Rust descriptor first, start() runs it.
    userDescriptors(user, { '05-rust.json': descriptor(rust) });
    const share = userShare(user);
    const started = await asUser(user, startBody({ sourcePath: share, socketPath: path.join(user.home, 'r.sock') }), {
      XDG_CONFIG_HOME: onlyLegacy,
    });
    assert.equal(started.error, undefined, started.error?.message);
    assert.equal(started.value.uid, user.uid);
  });

  test('a descriptor someone else may write is refused as an untrusted file; one that is not JSON names the file', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const config = userDescriptors(user, { '01-bad.json': '{ not json' });
    const find = 'return lib.vhostUserBackends();';
    const bad = await asUser(user, find, { XDG_CONFIG_HOME: config });
    assertRefused(bad, 'path', /01-bad\.json' is not a vhost-user backend descriptor: not JSON/);
    const file = path.join(config, 'qemu', 'vhost-user', '01-bad.json');
    fs.writeFileSync(file, descriptor('/bin/true'));
    fs.chmodSync(file, 0o666);
    const open = await asUser(user, find, { XDG_CONFIG_HOME: config });
    assert.equal(open.error?.code, 'ERR_UNTRUSTED_FILE', JSON.stringify(open));
    assert.match(open.error.message, /writable by others/);
  });
});

describe('the Rust virtiofsd as a user: sockets', () => {
  test("no socketPath: the socket is made in the user's runtime directory ($XDG_RUNTIME_DIR/virtiofs-daemon, 0700), is the user's, and goes with stop()", async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const xdg = userDir(user, 'xdg-run');
    const r = await asUser(user, startBody({ path: virtiofsdPath('rust'), sourcePath: share }), {
      XDG_RUNTIME_DIR: xdg,
    });
    assert.equal(r.error, undefined, r.error?.message);
    const v = r.value;
    assert.match(v.socketPath, new RegExp(`^${xdg}/virtiofs-daemon/virtiofsd-[0-9a-f]{8}\\.sock$`));
    assert.equal(v.uid, user.uid, 'the daemon runs as the user');
    assert.deepEqual(v.socket, { uid: user.uid, gid: user.gid, isSocket: true });
    assert.deepEqual(v.dir, { uid: user.uid, mode: 0o700 });
    assert.ok(v.argv.includes(`--shared-dir=${share}`) && v.argv.includes('--fd=3'), v.argv.join(' '));
    assert.equal(fs.existsSync(v.socketPath), false, 'stop() removed the socket');
  });

  test('no XDG_RUNTIME_DIR (or one that is not private): the fallback /tmp/virtiofs-daemon-<uid>/', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const fallback = `/tmp/virtiofs-daemon-${user.uid}`;
    // An earlier user of the same uid may have left it (its owner would be wrong for us).
    fs.rmSync(fallback, { recursive: true, force: true });
    t.after(() => fs.rmSync(fallback, { recursive: true, force: true }));
    assert.equal(fs.existsSync(`/run/user/${user.uid}`), false, 'the test user has no /run/user directory');
    for (const env of [{}, { XDG_RUNTIME_DIR: '/tmp' }]) {
      const r = await asUser(user, startBody({ path: virtiofsdPath('rust'), sourcePath: share }), env);
      assert.equal(r.error, undefined, r.error?.message);
      assert.match(r.value.socketPath, new RegExp(`^${fallback}/virtiofsd-[0-9a-f]{8}\\.sock$`), JSON.stringify(env));
      assert.deepEqual(r.value.dir, { uid: user.uid, mode: 0o700 });
    }
  });

  test("a socket in /tmp (root's, sticky): the user's, where the library used to fail with an untyped EPERM chowning it to root", async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const socketPath = `/tmp/vfd-desk-${process.pid}-${user.uid}.sock`;
    t.after(() => fs.rmSync(socketPath, { force: true }));
    const r = await asUser(user, startBody({ path: virtiofsdPath('rust'), sourcePath: share, socketPath }));
    assert.equal(r.error, undefined, r.error?.message);
    assert.deepEqual(r.value.socket, { uid: user.uid, gid: user.gid, isSocket: true });
    assert.equal(r.value.dir.uid, 0);
  });

  test("as root, the socket still takes its directory's owner (Kata's rule)", async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const dir = userDir(user, 'vm');
    const share = path.join(tempDir(t), 'share');
    fs.mkdirSync(share);
    const d = new Virtiofsd({
      path: virtiofsdPath('rust'),
      socketPath: path.join(dir, 'v.sock'),
      sourcePath: share,
      logger: silent,
    });
    t.after(() => d.stop());
    await d.start();
    const st = fs.statSync(d.socketPath);
    assert.deepEqual([st.uid, st.gid], [user.uid, user.gid]);
  });
});

describe('idmap in the daemon argv (/proc/<pid>/cmdline)', () => {
  test('as a user: --uid-map/--gid-map for each form; allowed under extraArgsPolicy safe, where no extra argument may add to it', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    assert.ok(user.subids, 'useradd gave the user an /etc/subuid and /etc/subgid range');
    const { uid: su, gid: sg } = user.subids;
    const share = userShare(user);
    const run = userDir(user, 'run');
    const base = { path: virtiofsdPath('rust'), sourcePath: share, socketPath: path.join(run, 'v.sock') };
    const maps = (argv) => argv.filter((a) => /^--(uid|gid)-map=/.test(a));
    const cases = [
      [{ guestUser: 1000 }, [`--uid-map=:1000:${user.uid}:1:`, `--gid-map=:1000:${user.gid}:1:`]],
      [{ guestUser: 1000, guestGroup: 100 }, [`--uid-map=:1000:${user.uid}:1:`, `--gid-map=:100:${user.gid}:1:`]],
      [
        'auto',
        [
          `--uid-map=:0:${user.uid}:1:`,
          `--uid-map=:1:${su.start}:${su.count}:`,
          `--gid-map=:0:${user.gid}:1:`,
          `--gid-map=:1:${sg.start}:${sg.count}:`,
        ],
      ],
      [
        {
          uid: [
            { guest: 0, host: user.uid, count: 1 },
            { guest: 1000, host: su.start, count: 10 },
          ],
          gid: [{ guest: 0, host: user.gid, count: 1 }],
        },
        [`--uid-map=:0:${user.uid}:1:`, `--uid-map=:1000:${su.start}:10:`, `--gid-map=:0:${user.gid}:1:`],
      ],
    ];
    for (const [idmap, expected] of cases) {
      const r = await asUser(user, startBody({ ...base, idmap, extraArgsPolicy: 'safe' }));
      assert.equal(r.error, undefined, `${JSON.stringify(idmap)}: ${r.error?.message}`);
      assert.deepEqual(maps(r.value.argv), expected, JSON.stringify(idmap));
      assert.equal(
        r.value.argv.some((a) => a.startsWith('--translate-')),
        false,
      );
    }
    const extra = await asUser(
      user,
      startBody({ ...base, idmap: { guestUser: 1000 }, extraArgsPolicy: 'known', extraArgs: ['--uid-map=:0:0:1:'] }),
    );
    assertRefused(extra, 'extraArgs[0]', /uid_map is set by the typed option idmap/);
    const sandbox = await asUser(
      user,
      startBody({ ...base, idmap: 'auto', extraArgsPolicy: 'known', extraArgs: ['--sandbox=none'] }),
    );
    assertRefused(sandbox, 'extraArgs[0]', /sandbox is set by the typed option idmap/);
  });

  test('as root: --translate-uid/--translate-gid for each form, every other guest id forbidden and every other host id squashed to 65534', async (t) => {
    const translate = (argv, kind) =>
      argv.filter((a) => a.startsWith(`--translate-${kind}=`)).map((a) => a.slice(`--translate-${kind}=`.length));
    const overflow = Number(fs.readFileSync('/proc/sys/kernel/overflowuid', 'utf8'));

    // "The guest's user 1000 owns my files": root's, here; guest root acts as root.
    const preset = await rootArgv(t, { idmap: { guestUser: 1000 } });
    assert.deepEqual(translate(preset, 'uid'), [
      'map:1000:0:1',
      'squash-guest:0:0:1',
      'forbid-guest:1:999',
      `forbid-guest:1001:${ID_LIMIT - 1001}`,
      `squash-host:1:${overflow}:${ID_LIMIT - 1}`,
    ]);
    assert.deepEqual(translate(preset, 'gid'), translate(preset, 'uid'));
    assert.equal(
      preset.some((a) => /^--[ug]id-map/.test(a)),
      false,
    );

    // Explicit ranges, the gaps on both sides.
    const explicit = await rootArgv(t, {
      idmap: {
        uid: [
          { guest: 0, host: 5000, count: 1 },
          { guest: 1000, host: 600000, count: 100 },
        ],
        gid: [{ guest: 0, host: 5000, count: 1 }],
      },
    });
    assert.deepEqual(translate(explicit, 'uid'), [
      'map:0:5000:1',
      'map:1000:600000:100',
      'forbid-guest:1:999',
      `forbid-guest:1100:${ID_LIMIT - 1100}`,
      `squash-host:0:${overflow}:5000`,
      `squash-host:5001:${overflow}:${600000 - 5001}`,
      `squash-host:600100:${overflow}:${ID_LIMIT - 600100}`,
    ]);
    assert.deepEqual(translate(explicit, 'gid'), [
      'map:0:5000:1',
      `forbid-guest:1:${ID_LIMIT - 1}`,
      `squash-host:0:${overflow}:5000`,
      `squash-host:5001:${overflow}:${ID_LIMIT - 5001}`,
    ]);

    // 'auto': guest 0 is root, guest 1 and up root's first /etc/subuid range.
    const sub = rootSubIds(t);
    const auto = await rootArgv(t, { idmap: 'auto', extraArgsPolicy: 'safe' });
    const s = sub.uid;
    assert.deepEqual(translate(auto, 'uid'), [
      'map:0:0:1',
      `map:1:${s.start}:${s.count}`,
      `forbid-guest:${1 + s.count}:${ID_LIMIT - 1 - s.count}`,
      `squash-host:1:${overflow}:${s.start - 1}`,
      `squash-host:${s.start + s.count}:${overflow}:${ID_LIMIT - s.start - s.count}`,
    ]);
  });
});

describe('idmap refused before anything runs, typed, with the fix', () => {
  test('as a user: a sandbox that contradicts it, a host range /etc/subuid does not give, no range for auto, no newuidmap on PATH', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const run = userDir(user, 'run');
    const socketPath = path.join(run, 'v.sock');
    const base = { path: virtiofsdPath('rust'), sourcePath: share, socketPath };
    const { uid: su } = user.subids;

    assertRefused(
      await asUser(user, startBody({ ...base, idmap: { guestUser: 1000 }, sandbox: 'chroot' })),
      'sandbox',
      /'chroot' contradicts idmap: as uid \d+ the ids are mapped by the user namespace/,
    );
    const beyond = su.start + su.count;
    assertRefused(
      await asUser(
        user,
        startBody({
          ...base,
          idmap: {
            uid: [
              { guest: 0, host: user.uid, count: 1 },
              { guest: 1, host: beyond, count: 5 },
            ],
            gid: [{ guest: 0, host: user.gid, count: 1 }],
          },
        }),
      ),
      'idmap.uid[1]',
      new RegExp(`maps host uids ${beyond}-${beyond + 4}, which uid ${user.uid} may not map`),
      new RegExp(`the ranges /etc/subuid gives it \\(${su.start}-${su.start + su.count - 1}\\)`),
    );
    assertRefused(
      await asUser(user, startBody({ ...base, idmap: 'auto', env: { PATH: '/nonexistent' } })),
      'idmap',
      /through newuidmap and newgidmap, and newuidmap and newgidmap are not on the daemon's PATH \(\/nonexistent\)/,
      /Install the uidmap package \(Debian, Ubuntu: apt install uidmap/,
    );
    // The preset needs no helper, whatever the PATH.
    const noHelper = await asUser(
      user,
      startBody({ ...base, idmap: { guestUser: 1000 }, env: { PATH: '/nonexistent' } }),
    );
    assert.equal(noHelper.error, undefined, noHelper.error?.message);

    execFileSync('usermod', ['--del-subuids', `${su.start}-${su.start + su.count - 1}`, user.name], { stdio: 'pipe' });
    assertRefused(
      await asUser(user, startBody({ ...base, idmap: 'auto' })),
      'idmap',
      new RegExp(
        `'auto' maps guest uids 1 and up to your first range in /etc/subuid, and user ${user.name} \\(uid ${user.uid}\\) has none there`,
      ),
      /usermod --add-subuids/,
      /or use idmap: \{ guestUser: 1000 \}/,
    );
    assert.equal(fs.existsSync(socketPath), false, 'no socket file was left');
  });

  test('the daemon itself failing to map ids (raw --uid-map in extraArgs, no newuidmap): ERR_DAEMON_EXITED says why', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const run = userDir(user, 'run');
    const { uid: su } = user.subids;
    const r = await asUser(
      user,
      startBody({
        path: virtiofsdPath('rust'),
        sourcePath: share,
        socketPath: path.join(run, 'v.sock'),
        extraArgs: [`--uid-map=:0:${user.uid}:1:`, `--uid-map=:1:${su.start}:${su.count}:`],
        env: { PATH: '/nonexistent' },
      }),
    );
    assert.equal(r.error?.code, 'ERR_DAEMON_EXITED', JSON.stringify(r));
    assert.match(r.error.message, /could not map ids in its user namespace/);
    assert.match(r.error.message, /install the uidmap package/);
    assert.match(r.error.message, /failed to execute newuidmap/);
  });

  test('as root: the legacy daemon refuses it by name, an older Rust release by its version, posixAcl contradicts it; nothing but the probe (--version, --print-capabilities) runs', async (t) => {
    const dir = tempDir(t);
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const socketPath = path.join(dir, 'v.sock');
    const start = (options) =>
      rejection(
        new Virtiofsd({ sourcePath: share, socketPath, logger: silent, ...options }).start(),
        JSON.stringify(options),
      );

    const legacy = await start({ path: virtiofsdPath('legacy'), dialect: 'legacy', idmap: { guestUser: 1000 } });
    assert.ok(legacy instanceof InvalidOptionError);
    assert.equal(legacy.option, 'idmap');
    assert.match(legacy.message, /the legacy C virtiofsd cannot map ids/);

    // A binary that says it is 1.12.0 (the release before --translate-*): the refusal names both versions.
    const log = path.join(dir, 'calls');
    const old = path.join(dir, 'virtiofsd-1.12');
    fs.writeFileSync(old, `#!/bin/sh\necho "$@" >> ${log}\necho "virtiofsd 1.12.0"\n`, { mode: 0o755 });
    const tooOld = await start({ path: old, idmap: { guestUser: 1000 } });
    assert.equal(tooOld.option, 'idmap');
    assert.match(
      tooOld.message,
      /--translate-uid\/--translate-gid\), which the Rust virtiofsd has since 1\.13\.0, and '.*virtiofsd-1\.12' is 1\.12\.0/,
    );
    // The one probe of the binary (virtiofsd-probe.ts), never the daemon itself.
    assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n'), ['--version', '--print-capabilities']);

    const acl = await start({ path: virtiofsdPath('rust'), idmap: { guestUser: 1000 }, posixAcl: true });
    assert.equal(acl.option, 'posixAcl');
    assert.match(acl.message, /virtiofsd refuses --translate-uid\/--translate-gid with --posix-acl/);
    assert.equal(fs.existsSync(socketPath), false);
  });

  test('its shape: forms, ids, counts, overlaps, unknown keys, each naming the field', () => {
    const cases = [
      [{ guestUser: 1000, uid: [] }, 'idmap', /mixes the guestUser preset with uid\/gid ranges/],
      [{ guestGroup: 10 }, 'idmap.guestUser', /is required with guestGroup/],
      [{ guestUser: -1 }, 'idmap.guestUser', /not an id/],
      [{ guestUser: ID_LIMIT }, 'idmap.guestUser', /not an id/],
      [{ guestUser: 1000, guestUid: 1 }, 'idmap.guestUid', /did you mean guestUser\?/],
      [{ uidMap: [] }, 'idmap.uidMap', /did you mean uid\?/],
      [{ uid: [{ guest: 0, host: 1, count: 1 }] }, 'idmap.gid', /is required/],
      [{ uid: [], gid: [] }, 'idmap.uid', /has 0 ranges; give 1 to 340/],
      [{ uid: [{ guest: 0, host: 1, count: 0 }], gid: [] }, 'idmap.uid[0].count', /not a count/],
      [{ uid: [{ guest: 10, host: ID_LIMIT - 5, count: 6 }], gid: [] }, 'idmap.uid[0].count', /from 1 to 5/],
      [{ uid: [{ guest: 0, host: 1, cont: 2 }], gid: [] }, 'idmap.uid[0].cont', /did you mean count\?/],
      [
        {
          uid: [
            { guest: 0, host: 100, count: 10 },
            { guest: 5, host: 500, count: 1 },
          ],
          gid: [{ guest: 0, host: 1, count: 1 }],
        },
        'idmap.uid[1]',
        /\(guest 5 → host 500\) overlaps idmap\.uid\[0\] \(guest 0-9 → host 100-109\) on the guest side/,
      ],
      [
        {
          uid: [{ guest: 0, host: 1, count: 1 }],
          gid: [
            { guest: 0, host: 100, count: 10 },
            { guest: 50, host: 105, count: 1 },
          ],
        },
        'idmap.gid[1]',
        /on the host side/,
      ],
      ['user', 'idmap', /is not an id map; use 'auto'/],
    ];
    for (const [idmap, option, pattern] of cases) {
      const err = (() => {
        try {
          lib.requireIdmap(idmap);
        } catch (e) {
          return e;
        }
        return null;
      })();
      assert.ok(err instanceof InvalidOptionError, `${JSON.stringify(idmap)} was accepted`);
      assert.equal(err.option, option, err.message);
      assert.match(err.message, pattern);
    }
  });
});

describe('cgroups as a user: what to delegate, and the common-ancestor rule', () => {
  test("a cgroup the user may not create in: mkdir EACCES, with delegation's recipe", async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const run = userDir(user, 'run');
    const dir = freshCgroup(t, 'vfd-desk');
    const r = await asUser(
      user,
      startBody({ path: virtiofsdPath('rust'), sourcePath: share, socketPath: path.join(run, 'v.sock'), cgroup: dir }),
    );
    assertRefused(
      r,
      'cgroup',
      new RegExp(`cannot create a cgroup in '${dir}': .*EACCES`),
      new RegExp(`'${dir}' \\(owned by uid 0\\) is not delegated to uid ${user.uid}`),
      /systemd-run --user --scope -p Delegate=yes/,
    );
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.startsWith('virtiofsd-')),
      [],
    );
  });

  test('a cgroup delegated to the user while the manager runs outside it: clone3 EACCES is the common-ancestor rule, said so; nothing left behind', async (t) => {
    const user = createUser(t, { prefix: 'vfdsk', home: true });
    const share = userShare(user);
    const run = userDir(user, 'run');
    const dir = freshCgroup(t, 'vfd-desk');
    for (const f of ['.', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control']) {
      fs.chownSync(path.join(dir, f), user.uid, user.gid);
    }
    const socketPath = path.join(run, 'v.sock');
    const r = await asUser(
      user,
      startBody({ path: virtiofsdPath('rust'), sourcePath: share, socketPath, cgroup: dir }),
    );
    assertRefused(
      r,
      'cgroup',
      /cannot start the daemon in '.*\/virtiofsd-[0-9a-f]{8}' \(EACCES from (clone3|cgroup\.procs)\)/,
      /nearest common ancestor's cgroup\.procs/,
      /whose cgroup\.procs is owned by uid 0/,
      new RegExp(`The cgroup is delegated to uid ${user.uid} but the manager runs outside it`),
      /systemd-run --user --scope -p Delegate=yes/,
    );
    assert.deepEqual(
      fs.readdirSync(dir).filter((n) => n.startsWith('virtiofsd-')),
      [],
      'its cgroup was removed',
    );
    assert.equal(fs.existsSync(socketPath), false, 'its socket was removed');
  });
});

describe('unknown option keys: a typed error naming the key and the nearest option', () => {
  const dir = '/nonexistent';
  const vcases = [
    [{ uidMap: 1 }, 'uidMap', /is not an option of new Virtiofsd\(\); did you mean idmap\?/],
    [{ translateUid: 'map:0:0:1' }, 'translateUid', /did you mean idmap\?/],
    [
      { socketGroup: 'kvm' },
      'socketGroup',
      /the nearest is socketPath: the socket takes the owner and group of its directory/,
    ],
    [{ sourcepath: '/x' }, 'sourcepath', /did you mean sourcePath\?/],
    [{ threadPoolsize: 2 }, 'threadPoolsize', /did you mean threadPoolSize\?/],
    [{ idMap: 'auto' }, 'idMap', /did you mean idmap\?/],
  ];
  for (const [extra, key, pattern] of vcases) {
    test(`new Virtiofsd({ ${key} }): start() rejects, naming ${key}`, async () => {
      const err = await rejection(new Virtiofsd({ sourcePath: dir, socketPath: '/tmp/x.sock', ...extra }).start());
      assert.ok(err instanceof InvalidOptionError);
      assert.equal(err.option, key);
      assert.match(err.message, pattern);
    });
  }

  test('new Nydusd, new NydusClient, nydusd.mount(), NydusClient.mount(), Virtiofsd.adopt and Nydusd.adopt', async () => {
    const n = await rejection(
      new Nydusd({ sockPath: '/tmp/a.sock', apiSockPath: '/tmp/b.sock', sourcePath: dir, apisock: '/tmp/c' }).start(),
    );
    assert.equal(n.option, 'apisock');
    assert.match(n.message, /is not an option of new Nydusd\(\); did you mean apiSockPath\?/);

    assert.throws(
      () => new NydusClient('/tmp/api.sock', { timeout: 5 }),
      (e) => e.option === 'timeout' && /new NydusClient\(\); did you mean timeoutMs\?/.test(e.message),
    );
    const client = new NydusClient('/tmp/api.sock');
    const cmd = await rejection(client.mount('/x', { fs_type: 'rafs', source: '/s', config: '{}', prefetchFiles: [] }));
    assert.equal(cmd.option, 'cmd.prefetchFiles');
    assert.match(cmd.message, /the mount command; did you mean prefetch_files\?/);
    client.close();

    const nydusd = new Nydusd({ sockPath: '/tmp/a.sock', apiSockPath: '/tmp/b.sock', sourcePath: dir });
    const mount = await rejection(
      nydusd.mount({ mountpoint: '/rafs/a/lowerdir', source: '/s', config: '{}', prefetch_files: [] }),
    );
    assert.equal(mount.option, 'prefetch_files');
    assert.match(mount.message, /nydusd\.mount\(\); did you mean prefetchFiles\?/);

    const adopt = await rejection(Virtiofsd.adopt({}, { onquit: () => {} }));
    assert.equal(adopt.option, 'onquit');
    assert.match(adopt.message, /is not an option of Virtiofsd\.adopt\(\); did you mean onQuit\?/);
    const nadopt = await rejection(Nydusd.adopt({}, { apiTimeout: 5 }));
    assert.equal(nadopt.option, 'apiTimeout');
    assert.match(nadopt.message, /Nydusd\.adopt\(\); did you mean apiTimeoutMs\?/);
  });
});

'use strict';
// A real guest (QEMU, TCG) on a real virtiofsd started through the public API, attached with the
// library's own qemuArgs(): what a guest reads and writes, and who owns it on the host. One boot per
// case (each takes seconds under TCG). Needs what scripts/setup.sh installs; fails, never skips,
// without it. Run as root (CI does): the unprivileged case creates its own user.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Virtiofsd } = require('../dist/index.js');
const { DIALECTS, virtiofsdPath } = require('./helpers/daemons.js');
const { guestConfig, parseLsLn, runGuest } = require('./helpers/guest.js');
const { createUser, spawnAs } = require('./helpers/users.js');
const { captureLogger, tempDir, withTimeout } = require('./helpers/util.js');

/** Every case: one boot (5-10 s under TCG on two busy cores) plus the daemon; generous for CI. */
const CASE_TIMEOUT_MS = 240000;

/**
 * The guest's part, the same for every case: read a host file, write one file as guest root and
 * one as guest uid 1000 (busybox su, no PAM), chown one to 1000, and list what it sees. Each step
 * reports its own exit status, so one refusal does not hide the rest.
 */
const SCRIPT = `
echo "read=$(cat /mnt/host-file 2>&1)"
echo by-root > /mnt/drop/by-root; echo "root-write=$?"
su guest -s /bin/sh -c 'echo "user-id=$(id -u):$(id -g)"; echo by-user > /mnt/drop/by-user; echo "user-write=$?"'
echo chowned > /mnt/drop/chowned && chown 1000:1000 /mnt/drop/chowned; echo "chown=$?"
echo '--- ls -ln /mnt'; ls -ln /mnt
echo '--- ls -ln /mnt/drop'; ls -ln /mnt/drop
`;

/** `key=value` lines of the guest's report, and its two listings as { name: 'uid:gid' }. */
function parseReport(output) {
  const [head, mnt = '', drop = ''] = output.split(/^--- ls -ln \/mnt(?:\/drop)?$/m);
  const values = Object.fromEntries(
    head
      .split('\n')
      .map((l) => /^([\w-]+)=(.*)$/.exec(l))
      .filter(Boolean)
      .map((m) => [m[1], m[2]]),
  );
  return { values, mnt: parseLsLn(mnt), drop: parseLsLn(drop) };
}

/** `uid:gid` of a host file, or its error code. */
function hostOwner(file) {
  try {
    const st = fs.statSync(file);
    return `${st.uid}:${st.gid}`;
  } catch (err) {
    return err.code;
  }
}

/**
 * The share every case uses: host-file (owner:owner), root-file (root), drop/ (world-writable,
 * where the guest writes), the guest's script. Returns its path.
 */
function makeShare(dir, owner) {
  const share = path.join(dir, 'share');
  fs.mkdirSync(path.join(share, 'drop'), { recursive: true });
  fs.writeFileSync(path.join(share, 'host-file'), 'from the host');
  fs.writeFileSync(path.join(share, 'root-file'), 'root');
  fs.writeFileSync(path.join(share, 'guest.sh'), SCRIPT);
  fs.chmodSync(path.join(share, 'drop'), 0o777); // past the umask
  for (const name of ['.', 'drop', 'host-file', 'guest.sh']) fs.chownSync(path.join(share, name), owner.uid, owner.gid);
  return share;
}

/** What a case observed, in the shape of the ownership table of the notes. */
function observe(report, share, output) {
  return {
    read: report.values.read,
    errors: output.split('\n').filter((l) => /^(sh|su|chown|cat): /.test(l)),
    userId: report.values['user-id'],
    writes: {
      root: `${report.values['root-write']} -> ${hostOwner(path.join(share, 'drop', 'by-root'))}`,
      user: `${report.values['user-write']} -> ${hostOwner(path.join(share, 'drop', 'by-user'))}`,
      chown: `${report.values.chown} -> ${hostOwner(path.join(share, 'drop', 'chowned'))}`,
    },
    guestSees: {
      'host-file': report.mnt['host-file'],
      'root-file': report.mnt['root-file'],
      drop: report.mnt.drop,
      'drop/by-root': report.drop['by-root'],
      'drop/by-user': report.drop['by-user'],
    },
  };
}

test('the guest harness is there: QEMU, kernel and initramfs from scripts/setup.sh', () => {
  const config = guestConfig();
  for (const file of [config.qemu, config.kernel, config.initrd]) assert.ok(fs.statSync(file).size > 0, file);
});

for (const dialect of DIALECTS) {
  test(
    `guest on the ${dialect} virtiofsd, all root, no id mapping: the guest's ids are the host's, both ways`,
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const share = makeShare(tempDir(t), { uid: 0, gid: 0 });
      const socketPath = path.join(path.dirname(share), 'vfs.sock');
      const { logger, records } = captureLogger();
      const daemon = new Virtiofsd({ path: virtiofsdPath(dialect), socketPath, sourcePath: share, dialect, logger });
      t.after(() => daemon.stop());
      await daemon.start();

      const guest = await runGuest(t, {
        deviceArgs: daemon.qemuArgs({ tag: 'guesttest', memory: '256M' }),
        script: 'guest.sh',
      }).catch((err) => {
        err.message += `\n--- virtiofsd ---\n${records.map((r) => r.msg).join('\n')}`;
        throw err;
      });
      const seen = observe(parseReport(guest.output), share, guest.output);
      t.diagnostic(
        `${dialect} as root: ${JSON.stringify(seen)} (boot to script ${guest.bootedAt} s, ${guest.wallMs} ms)`,
      );

      assert.equal(guest.status, 0, guest.output);
      assert.deepEqual(seen.errors, []);
      assert.equal(seen.read, 'from the host');
      assert.equal(seen.userId, '1000:1000', 'su guest ran as uid 1000 in the guest');
      assert.deepEqual(seen.writes, { root: '0 -> 0:0', user: '0 -> 1000:1000', chown: '0 -> 1000:1000' });
      assert.deepEqual(seen.guestSees, {
        'host-file': '0:0',
        'root-file': '0:0',
        drop: '0:0',
        'drop/by-root': '0:0',
        'drop/by-user': '1000:1000',
      });
    },
  );
}

test(
  'guest on the Rust virtiofsd with the library, virtiofsd and QEMU all run by an unprivileged user (no id mapping): guest root writes as the user',
  { timeout: CASE_TIMEOUT_MS },
  async (t) => {
    const user = createUser(t, { prefix: 'vfgst', home: true });
    const share = makeShare(user.home, user);
    const run = path.join(user.home, 'run');
    fs.mkdirSync(run, { mode: 0o700 });
    fs.chownSync(run, user.uid, user.gid);
    const socketPath = path.join(run, 'vfs.sock');

    // The manager runs as the user too: the library must work there, not only the daemon.
    const manager = spawnAs(t, user, process.execPath, [
      path.join(__dirname, 'helpers', 'guest-daemon.js'),
      JSON.stringify({
        path: virtiofsdPath('rust'),
        socketPath,
        sourcePath: share,
        tag: 'guesttest',
        memory: '256M',
        options: { dialect: 'rust' },
      }),
    ]);
    let stderr = '';
    manager.stderr.on('data', (b) => (stderr += b));
    const line = await withTimeout(
      new Promise((resolve) => {
        let out = '';
        manager.stdout.on('data', (b) => {
          out += b;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        manager.on('close', () => resolve(out));
      }),
      30000,
      'the manager (as the user) starting virtiofsd',
    );
    const started = JSON.parse(line || '{"error":"no output"}');
    assert.equal(started.error, undefined, `${started.error}\n${stderr}`);
    assert.equal(fs.statSync(`/proc/${started.pid}`).uid, user.uid, 'virtiofsd runs as the user');

    const guest = await runGuest(t, { deviceArgs: started.qemuArgs, script: 'guest.sh', asUser: user }).catch((err) => {
      err.message += `\n--- the manager's stderr ---\n${stderr}`;
      throw err;
    });
    manager.stdin.end(); // the manager stops its daemon and exits
    const seen = observe(parseReport(guest.output), share, guest.output);
    t.diagnostic(`rust as uid ${user.uid}: ${JSON.stringify(seen)} (boot to script ${guest.bootedAt} s)`);

    assert.equal(seen.read, 'from the host');
    assert.equal(seen.userId, '1000:1000', 'su guest ran as uid 1000 in the guest');
    // What a desktop app gets today without id mapping (issue 17): guest root's writes land as the user ...
    assert.equal(seen.writes.root, `0 -> ${user.uid}:${user.gid}`);
    // ... and guest root sees the user's files as the user's host ids, root's as the overflow id.
    assert.equal(seen.guestSees['host-file'], `${user.uid}:${user.gid}`);
    assert.equal(seen.guestSees['drop/by-root'], `${user.uid}:${user.gid}`);
    assert.equal(seen.guestSees['root-file'], '65534:65534');
    // ... and nobody else can be: guest uid 1000 cannot create a file, guest root cannot chown (EINVAL).
    // This is what the typed idmap (issue 17, item 1) is for.
    assert.equal(seen.writes.user, '1 -> ENOENT');
    assert.equal(seen.writes.chown, `1 -> ${user.uid}:${user.gid}`);
    assert.deepEqual(seen.errors, [
      "sh: can't create /mnt/drop/by-user: Invalid argument",
      'chown: /mnt/drop/chowned: Invalid argument',
    ]);
  },
);

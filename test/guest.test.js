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

/** A guest uid that no test user has: what an unmapped guest user does. */
const OTHER_UID = 4242;

/**
 * The guest's part: read a host file, write one file as guest root and one as each of `writers`
 * ({ uid, gid }, through busybox su and a passwd line added in the guest), chown one to
 * OTHER_UID, and list what it sees (`ls -ln`). Each step reports its exit status, so one refusal
 * does not hide the rest.
 */
function guestScript(writers) {
  const lines = ['echo "read=$(cat /mnt/host-file 2>&1)"', 'echo x > /mnt/drop/by-root; echo "write-root=$?"'];
  for (const { uid, gid } of writers) {
    lines.push(
      `echo "u${uid}:x:${uid}:${gid}::/tmp:/bin/sh" >> /etc/passwd`,
      `su u${uid} -s /bin/sh -c 'echo "id-${uid}=$(id -u):$(id -g)"; echo x > /mnt/drop/by-${uid}; echo "write-${uid}=$?"'`,
    );
  }
  lines.push(
    `echo x > /mnt/drop/chowned && chown ${OTHER_UID}:${OTHER_UID} /mnt/drop/chowned; echo "chown=$?"`,
    "echo '--- ls -ln /mnt'; ls -ln /mnt",
    "echo '--- ls -ln /mnt/drop'; ls -ln /mnt/drop",
  );
  return `${lines.join('\n')}\n`;
}

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
 * The share every case uses: host-file (owner's), root-file (root's), drop/ (world-writable,
 * where the guest writes) and the guest's script. Returns its path.
 */
function makeShare(dir, owner, writers) {
  const share = path.join(dir, 'share');
  fs.mkdirSync(path.join(share, 'drop'), { recursive: true });
  fs.writeFileSync(path.join(share, 'host-file'), 'from the host');
  fs.writeFileSync(path.join(share, 'root-file'), 'root');
  fs.writeFileSync(path.join(share, 'guest.sh'), guestScript(writers));
  fs.chmodSync(path.join(share, 'drop'), 0o777); // past the umask
  for (const name of ['.', 'drop', 'host-file', 'guest.sh']) fs.chownSync(path.join(share, name), owner.uid, owner.gid);
  return share;
}

/**
 * What a case observed, the shape of the notes' ownership table: per writer, its exit status in
 * the guest and the owner of its file on the host (ENOENT: not written); what the guest's
 * `ls -ln` shows for each file; the guest's error lines.
 */
function observe(output, share, writers) {
  const report = parseReport(output);
  const v = report.values;
  const drop = (name) => hostOwner(path.join(share, 'drop', name));
  const writes = { root: `${v['write-root']} -> ${drop('by-root')}` };
  for (const { uid } of writers) writes[uid] = `${v[`write-${uid}`]} -> ${drop(`by-${uid}`)}`;
  writes.chown = `${v.chown} -> ${drop('chowned')}`;
  const guestSees = {};
  for (const name of ['host-file', 'root-file', 'drop']) guestSees[name] = report.mnt[name];
  for (const [name, owner] of Object.entries(report.drop)) guestSees[`drop/${name}`] = owner;
  return {
    read: v.read,
    ids: writers.map(({ uid }) => v[`id-${uid}`]),
    writes,
    guestSees,
    errors: output.split('\n').filter((l) => /^(sh|su|chown|cat|ls): /.test(l)),
  };
}

test('the guest harness is there: QEMU, kernel and initramfs from scripts/setup.sh', () => {
  const config = guestConfig();
  for (const file of [config.qemu, config.kernel, config.initrd]) assert.ok(fs.statSync(file).size > 0, file);
});

/** Guest uid 1000 (the first user of a distribution) and one that no host user has. */
const GUEST_WRITERS = [
  { uid: 1000, gid: 1000 },
  { uid: OTHER_UID, gid: OTHER_UID },
];

for (const dialect of DIALECTS) {
  test(
    `guest on the ${dialect} virtiofsd, all root, no id mapping: the guest's ids are the host's, both ways`,
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const share = makeShare(tempDir(t), { uid: 0, gid: 0 }, GUEST_WRITERS);
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
      const seen = observe(guest.output, share, GUEST_WRITERS);
      t.diagnostic(`${dialect} as root: ${JSON.stringify(seen)}`);
      t.diagnostic(`boot to script ${guest.bootedAt} s (guest uptime), whole boot ${guest.wallMs} ms`);

      assert.equal(guest.status, 0, guest.output);
      assert.deepEqual(seen.errors, []);
      assert.equal(seen.read, 'from the host');
      assert.deepEqual(seen.ids, ['1000:1000', `${OTHER_UID}:${OTHER_UID}`], 'su ran each writer as itself');
      assert.deepEqual(seen.writes, {
        root: '0 -> 0:0',
        1000: '0 -> 1000:1000',
        [OTHER_UID]: `0 -> ${OTHER_UID}:${OTHER_UID}`,
        chown: `0 -> ${OTHER_UID}:${OTHER_UID}`,
      });
      assert.deepEqual(seen.guestSees, {
        'host-file': '0:0',
        'root-file': '0:0',
        drop: '0:0',
        'drop/by-root': '0:0',
        'drop/by-1000': '1000:1000',
        [`drop/by-${OTHER_UID}`]: `${OTHER_UID}:${OTHER_UID}`,
        'drop/chowned': `${OTHER_UID}:${OTHER_UID}`,
      });
    },
  );
}

test(
  'guest on the Rust virtiofsd with the library, virtiofsd and QEMU all run by an unprivileged user (no id mapping): guest root writes as the user',
  { timeout: CASE_TIMEOUT_MS },
  async (t) => {
    const user = createUser(t, { prefix: 'vfgst', home: true });
    assert.notEqual(user.uid, OTHER_UID);
    // Guest uid 1000, an unmapped uid, and the user's own ids (which the first user of a fresh
    // machine, as CI's, shares with guest uid 1000).
    const self = { uid: user.uid, gid: user.gid };
    const writers = [...GUEST_WRITERS.filter((w) => w.uid !== user.uid), self];
    const share = makeShare(user.home, user, writers);
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
    const seen = observe(guest.output, share, writers);
    t.diagnostic(`rust as uid ${user.uid}:${user.gid}: ${JSON.stringify(seen)}`);
    t.diagnostic(`boot to script ${guest.bootedAt} s (guest uptime), whole boot ${guest.wallMs} ms`);

    const mine = `${user.uid}:${user.gid}`;
    assert.equal(seen.read, 'from the host');
    assert.deepEqual(
      seen.ids,
      writers.map((w) => `${w.uid}:${w.gid}`),
      'su ran each writer as itself',
    );
    // What a desktop app gets today without id mapping (issue 17): the daemon's user namespace maps
    // the user's own ids and nothing else. Guest root's writes land as the user (the daemon does
    // not switch credentials for root), and so do those of a guest user whose ids are the user's;
    // any other guest user can create nothing, and guest root cannot chown (EINVAL: unmapped id).
    // This is what the typed idmap (issue 17, item 1) is for.
    assert.deepEqual(seen.writes, {
      root: `0 -> ${mine}`,
      ...Object.fromEntries(writers.map((w) => [w.uid, w === self ? `0 -> ${mine}` : '1 -> ENOENT'])),
      chown: `1 -> ${mine}`,
    });
    assert.deepEqual(seen.errors, [
      ...writers.filter((w) => w !== self).map((w) => `sh: can't create /mnt/drop/by-${w.uid}: Invalid argument`),
      'chown: /mnt/drop/chowned: Invalid argument',
    ]);
    // The guest sees the user's files as the user's host ids, anyone else's (root's) as the overflow id.
    assert.deepEqual(seen.guestSees, {
      'host-file': mine,
      'root-file': '65534:65534',
      drop: mine,
      'drop/by-root': mine,
      [`drop/by-${user.uid}`]: mine,
      'drop/chowned': mine,
    });
  },
);

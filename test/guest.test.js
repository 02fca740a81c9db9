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
const { guestConfig, runGuest } = require('./helpers/guest.js');
const { createUser } = require('./helpers/users.js');
const { captureLogger, tempDir } = require('./helpers/util.js');
const { GUEST_WRITERS, OTHER_UID, makeShare, observe, startAsUser } = require('./helpers/guest-share.js');

/** Every case: one boot (5-10 s under TCG on two busy cores) plus the daemon; generous for CI. */
const CASE_TIMEOUT_MS = 240000;

test('the guest harness is there: QEMU, kernel and initramfs from scripts/setup.sh', () => {
  const config = guestConfig();
  for (const file of [config.qemu, config.kernel, config.initrd]) assert.ok(fs.statSync(file).size > 0, file);
});

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
    const { started, manager, stderr } = await startAsUser(t, user, {
      path: virtiofsdPath('rust'),
      socketPath,
      sourcePath: share,
      tag: 'guesttest',
      memory: '256M',
      options: { dialect: 'rust' },
    });
    assert.equal(started.error, undefined, `${started.error?.message}\n${stderr()}`);
    assert.equal(fs.statSync(`/proc/${started.pid}`).uid, user.uid, 'virtiofsd runs as the user');

    const guest = await runGuest(t, { deviceArgs: started.qemuArgs, script: 'guest.sh', asUser: user }).catch((err) => {
      err.message += `\n--- the manager's stderr ---\n${stderr()}`;
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

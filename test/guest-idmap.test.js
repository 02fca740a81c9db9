'use strict';
// The typed idmap (issue 17), seen from a real guest (QEMU, TCG) on the Rust virtiofsd: for each
// form, one boot that writes as guest root, as guest user 1000 and as guest user 4242 (whom no
// form maps but 'auto'), chowns a file to 4242 and lists the share with `ls -ln`; asserted are the
// host owners of what it wrote and the ids the guest sees. Once with the library, virtiofsd and
// QEMU all run by an unprivileged user (--uid-map/--gid-map, the user namespace), once as root
// (--translate-uid/--translate-gid) with the same assertions. Each daemon's argv is read from
// /proc/<pid>/cmdline. Needs root (CI runs as root), the uidmap package and what
// scripts/setup.sh installs for test/guest.test.js; fails, never skips, without them.
//
// Run: node --test --test-concurrency=1 test/guest-idmap.test.js
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Virtiofsd, readIdmapHost } = require('../dist/index.js');
const { virtiofsdPath } = require('./helpers/daemons.js');
const { runGuest } = require('./helpers/guest.js');
const { GUEST_WRITERS, OTHER_UID, makeShare, observe, startAsUser } = require('./helpers/guest-share.js');
const { addSubIds, createUser } = require('./helpers/users.js');
const { captureLogger, tempDir } = require('./helpers/util.js');

/** One boot under TCG (3-10 s on two busy cores) plus the daemon; generous for CI. */
const CASE_TIMEOUT_MS = 240000;

const GUEST = { tag: 'idmaptest', memory: '256M' };

/** `uid:gid` */
const ids = (u, g = u) => `${u}:${g}`;

/** What the guest sees and does for each form, from who "I" am (the daemon's user) and the host ranges. */
function expected(form, { me, sub, unmappedErrno }) {
  const mine = ids(me.uid, me.gid);
  const cannot = (name) => `sh: can't create /mnt/drop/by-${name}: ${unmappedErrno}`;
  const cannotChown = `chown: /mnt/drop/chowned: ${unmappedErrno}`;
  if (form === 'guestUser') {
    // The guest's user 1000 owns my files: guest root and guest 1000 write as me, the guest sees
    // my files as 1000; nobody else is mapped.
    return {
      writes: { root: `0 -> ${mine}`, 1000: `0 -> ${mine}`, [OTHER_UID]: '1 -> ENOENT', chown: `1 -> ${mine}` },
      errors: [cannot(OTHER_UID), cannotChown],
      mineAs: ids(1000),
    };
  }
  if (form === 'auto') {
    // Guest 0 is me, guest n > 0 is my subordinate id start + n - 1: every guest user can write.
    const s = (n) => ids(sub.uid + n - 1, sub.gid + n - 1);
    return {
      writes: {
        root: `0 -> ${mine}`,
        1000: `0 -> ${s(1000)}`,
        [OTHER_UID]: `0 -> ${s(OTHER_UID)}`,
        chown: `0 -> ${s(OTHER_UID)}`,
      },
      errors: [],
      mineAs: ids(0),
    };
  }
  // The explicit ranges of explicitMap(): guest 0 is me, guest 1000 my first subordinate id.
  return {
    writes: {
      root: `0 -> ${mine}`,
      1000: `0 -> ${ids(sub.uid, sub.gid)}`,
      [OTHER_UID]: '1 -> ENOENT',
      chown: `1 -> ${mine}`,
    },
    errors: [cannot(OTHER_UID), cannotChown],
    mineAs: ids(0),
  };
}

/** The explicit form: guest 0 ↔ me, guest 1000 ↔ my first subordinate id. */
function explicitMap(me, sub) {
  return {
    uid: [
      { guest: 0, host: me.uid, count: 1 },
      { guest: 1000, host: sub.uid, count: 1 },
    ],
    gid: [
      { guest: 0, host: me.gid, count: 1 },
      { guest: 1000, host: sub.gid, count: 1 },
    ],
  };
}

/**
 * What the guest sees of the share: my files (host-file, drop/ and what guest root wrote) as
 * `mineAs`, what the guest users wrote as themselves, root's file as root when I am root and
 * as the overflow id otherwise.
 */
function guestSees(form, { me, mineAs, chownOk }) {
  const rootFile = me.uid === 0 ? mineAs : ids(65534);
  const seen = {
    'host-file': mineAs,
    'root-file': rootFile,
    drop: mineAs,
    'drop/by-root': mineAs,
    'drop/by-1000': form === 'guestUser' ? mineAs : ids(1000),
    'drop/chowned': chownOk ? ids(OTHER_UID) : mineAs,
  };
  if (form === 'auto') seen[`drop/by-${OTHER_UID}`] = ids(OTHER_UID);
  return seen;
}

/** Boot the guest on `deviceArgs` and check everything a form promises. */
async function bootAndCheck(t, { form, share, deviceArgs, asUser, me, sub, unmappedErrno, argv, mechanism }) {
  const guest = await runGuest(t, { deviceArgs, script: 'guest.sh', asUser });
  const seen = observe(guest.output, share, GUEST_WRITERS);
  const who = asUser ? `uid ${asUser.uid}` : 'root';
  t.diagnostic(`${form} as ${who}: ${JSON.stringify(seen)}`);
  t.diagnostic(`boot to script ${guest.bootedAt} s (guest uptime), whole boot ${guest.wallMs} ms`);
  const want = expected(form, { me, sub, unmappedErrno });

  assert.ok(
    argv.some((a) => a.startsWith(mechanism)),
    `the daemon's argv has ${mechanism}: ${argv.join(' ')}`,
  );
  assert.equal(seen.read, 'from the host');
  assert.deepEqual(seen.ids, ['1000:1000', ids(OTHER_UID)], 'su ran each writer as itself');
  assert.deepEqual(seen.writes, want.writes);
  assert.deepEqual(seen.errors, want.errors);
  assert.deepEqual(seen.guestSees, guestSees(form, { me, mineAs: want.mineAs, chownOk: form === 'auto' }));
}

const FORMS = ['guestUser', 'auto', 'explicit'];
const optionOf = (form, me, sub) =>
  form === 'guestUser' ? { guestUser: 1000 } : form === 'auto' ? 'auto' : explicitMap(me, sub);

for (const form of FORMS) {
  test(
    `idmap ${form}, as an unprivileged user (library, virtiofsd and QEMU): --uid-map/--gid-map; the host owners and the guest's ls -ln`,
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const user = createUser(t, { prefix: 'vfgid', home: true });
      assert.ok(user.subids, 'useradd gave the user an /etc/subuid and /etc/subgid range');
      const me = { uid: user.uid, gid: user.gid };
      const sub = { uid: user.subids.uid.start, gid: user.subids.gid.start };
      const share = makeShare(user.home, user, GUEST_WRITERS);
      // No socketPath: the default in the user's runtime directory.
      const run = path.join(user.home, 'xdg-run');
      fs.mkdirSync(run, { mode: 0o700 });
      fs.chownSync(run, user.uid, user.gid);
      const { started, manager, stderr } = await startAsUser(
        t,
        user,
        { path: virtiofsdPath('rust'), sourcePath: share, ...GUEST, options: { idmap: optionOf(form, me, sub) } },
        { XDG_RUNTIME_DIR: run },
      );
      assert.equal(started.error, undefined, `${started.error?.message}\n${stderr()}`);
      assert.match(started.socketPath, new RegExp(`^${run}/virtiofs-daemon/virtiofsd-[0-9a-f]{8}\\.sock$`));
      assert.equal(fs.statSync(`/proc/${started.pid}`).uid, user.uid, 'virtiofsd runs as the user');
      try {
        await bootAndCheck(t, {
          form,
          share,
          deviceArgs: started.qemuArgs,
          asUser: user,
          me,
          sub,
          unmappedErrno: 'Invalid argument',
          argv: started.argv,
          mechanism: '--uid-map=',
        });
      } catch (err) {
        err.message += `\n--- the manager's stderr ---\n${stderr()}`;
        throw err;
      } finally {
        manager.stdin.end(); // the manager stops its daemon and exits
      }
    },
  );
}

for (const form of FORMS) {
  test(
    `idmap ${form}, as root: --translate-uid/--translate-gid with the gaps forbidden and squashed; the same guest assertions`,
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      let me = { uid: 0, gid: 0 };
      let sub;
      let share;
      if (form === 'explicit') {
        // Root maps a user's files, as a system service would: "me" is that user's ids here.
        const user = createUser(t, { prefix: 'vfgid', home: true });
        me = { uid: user.uid, gid: user.gid };
        sub = { uid: user.subids.uid.start, gid: user.subids.gid.start };
        share = makeShare(user.home, user, GUEST_WRITERS);
      } else {
        if (form === 'auto') {
          // 'auto' as root takes root's first /etc/subuid range: give it one for this test.
          const start = 2100000000 + Math.floor(Math.random() * 1000) * 65536;
          addSubIds(t, 'root', start, 65536);
          const host = readIdmapHost();
          sub = { uid: host.subuid[0].start, gid: host.subgid[0].start };
          assert.equal(sub.uid, start);
        }
        share = makeShare(tempDir(t), me, GUEST_WRITERS);
      }
      const { logger, records } = captureLogger();
      const daemon = new Virtiofsd({
        path: virtiofsdPath('rust'),
        socketPath: path.join(tempDir(t), 'vfs.sock'),
        sourcePath: share,
        idmap: optionOf(form, me, sub),
        logger,
      });
      t.after(() => daemon.stop());
      const pid = await daemon.start();
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
      await bootAndCheck(t, {
        form,
        share,
        deviceArgs: daemon.qemuArgs(GUEST),
        me,
        sub,
        // virtiofsd 1.13 answers a forbidden id with EIO: its forbid-guest error carries no errno.
        unmappedErrno: 'Input/output error',
        argv,
        mechanism: '--translate-uid=map:',
      }).catch((err) => {
        err.message += `\n--- virtiofsd ---\n${records.map((r) => r.msg).join('\n')}`;
        throw err;
      });
    },
  );
}

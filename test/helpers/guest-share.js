'use strict';
/**
 * The share every guest test uses and what the guest reports of it (moved here from
 * test/guest.test.js for test/guest-idmap.test.js): a share with a host file, a root file and a
 * world-writable drop/, a guest script that writes as guest root and as given guest users,
 * chowns, and lists with `ls -ln`; the observation in the shape of the notes' ownership table;
 * and the manager run as a user (helpers/guest-daemon.js).
 */
const fs = require('node:fs');
const path = require('node:path');
const { parseLsLn } = require('./guest.js');
const { spawnAs } = require('./users.js');
const { withTimeout } = require('./util.js');

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

/** Guest uid 1000 (the first user of a distribution) and one that no host user has. */
const GUEST_WRITERS = [
  { uid: 1000, gid: 1000 },
  { uid: OTHER_UID, gid: OTHER_UID },
];

/**
 * Start `helpers/guest-daemon.js` as `user` with `args` (see that file) and wait for its line:
 * `{ started, manager, stderr }` - its report ({ pid, argv, socketPath, qemuArgs } or { error }),
 * the ChildProcess (end its stdin to stop the daemon) and a function that returns its stderr so far.
 */
async function startAsUser(t, user, args, env = {}) {
  const manager = spawnAs(t, user, process.execPath, [path.join(__dirname, 'guest-daemon.js'), JSON.stringify(args)], {
    env,
  });
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
  return { started, manager, stderr: () => stderr };
}

module.exports = { GUEST_WRITERS, OTHER_UID, guestScript, hostOwner, makeShare, observe, parseReport, startAsUser };

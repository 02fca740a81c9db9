'use strict';
/**
 * File descriptors under a real guest (issue 18): a QEMU guest (TCG, test/helpers/guest.js)
 * opens files in the share through a real virtiofsd started by the public API, and
 * - stats().openFds grows by at least one fd per file the guest holds open, falls back when it
 *   closes them, and always equals what /proc lists for the daemon's processes;
 * - with a low rlimitNofile, the fd-headroom warning is logged once per crossing of fdWarnRatio,
 *   from the shared timer alone (no stats() call), and re-armed when the guest closes its files.
 *
 * The guest and the host take turns through marker files in the share: the guest touches
 * `state-<phase>` when it holds (or has closed) its files, and waits for the host's `go-<phase>`.
 * Each case is one boot (seconds under TCG). Needs what scripts/setup.sh installs; fails, never
 * skips, without it. Run as root.
 *
 * Run: node --test --test-concurrency=1 test/guest-fds.test.js
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Virtiofsd } = require('../dist/index.js');
const { DIALECTS, liveGroupMembers, virtiofsdPath } = require('./helpers/daemons.js');
const { runGuest } = require('./helpers/guest.js');
const { captureLogger, sleep, tempDir, waitFor } = require('./helpers/util.js');

const CASE_TIMEOUT_MS = 300000;
/** Files the guest holds open at once. */
const FILES = 200;
/** How long either side waits for the other's marker. */
const TURN_MS = 120000;

/** A share with FILES files in files/. */
function makeShare(t) {
  const dir = tempDir(t);
  const share = path.join(dir, 'share');
  fs.mkdirSync(path.join(share, 'files'), { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(share, 'files', `f${i}`), `file ${i}\n`);
  return { dir, share, socketPath: path.join(dir, 'vfs.sock') };
}

/**
 * The guest's part: `rounds` times, open every file (one `sleep` per file holds it on its stdin),
 * say so (state-open<r>), wait for go-open<r>, close them all (state-closed<r>), wait for
 * go-closed<r>. A wait gives up after TURN_MS, so a failed host never keeps the guest up.
 */
function guestScript(rounds) {
  const wait = (marker) =>
    `n=0; while [ ! -e /mnt/${marker} ] && [ $n -lt ${TURN_MS / 200} ]; do sleep 0.2; n=$((n+1)); done`;
  const lines = ['set -u'];
  for (let r = 1; r <= rounds; r++) {
    lines.push(
      'pids=""',
      `for i in $(seq 0 ${FILES - 1}); do sleep 1000 < /mnt/files/f$i & pids="$pids $!"; done`,
      // Each sleep opens its file after the fork: wait until every one holds it.
      'for p in $pids; do until case "$(readlink /proc/$p/fd/0)" in /mnt/files/*) true ;; *) false ;; esac; do sleep 0.05; done; done',
      `touch /mnt/state-open${r}`,
      wait(`go-open${r}`),
      'kill $pids; wait',
      `touch /mnt/state-closed${r}`,
      wait(`go-closed${r}`),
    );
  }
  lines.push('echo done');
  return `${lines.join('\n')}\n`;
}

/** Wait for the guest's marker in the share. */
const guestSays = (share, marker) =>
  waitFor(() => fs.existsSync(path.join(share, marker)), { timeoutMs: TURN_MS, intervalMs: 50, what: marker });

/** The host's answer to the guest. */
const hostSays = (share, marker) => fs.writeFileSync(path.join(share, marker), '');

/** Open fds of the daemon's processes as /proc lists them (its group: the daemon and its sandbox child). */
function procFds(pid) {
  return liveGroupMembers(pid).reduce((n, p) => n + fs.readdirSync(`/proc/${p.pid}/fd`).length, 0);
}

/**
 * stats().openFds and /proc's count, read until they agree (an fd the daemon opens or closes
 * between the two reads makes them differ for a moment; an idle daemon holds still).
 */
async function agreedFds(daemon, pid) {
  let last;
  for (let i = 0; i < 50; i++) {
    const stats = await daemon.stats();
    const listed = procFds(pid);
    if (stats.openFds === listed) return stats;
    last = `stats ${stats.openFds}, /proc ${listed}`;
    await sleep(20);
  }
  assert.fail(`stats().openFds never matched /proc: ${last}`);
}

/**
 * {@link agreedFds} once it holds still (three readings 200 ms apart): the guest kernel sends
 * FUSE_RELEASE for a closed file asynchronously, so a daemon is still closing fds for a moment
 * after the guest says it has closed its files.
 */
async function settledFds(daemon, pid) {
  let last = await agreedFds(daemon, pid);
  for (let same = 0, i = 0; same < 2 && i < 50; i++) {
    await sleep(200);
    const now = await agreedFds(daemon, pid);
    same = now.openFds === last.openFds ? same + 1 : 0;
    last = now;
  }
  return last;
}

/** The guest, booted on `daemon`; its failure carries the daemon's log. */
function boot(t, daemon, records) {
  const guest = runGuest(t, {
    deviceArgs: daemon.qemuArgs({ tag: 'fdtest', memory: '256M' }),
    script: 'guest.sh',
    timeoutMs: CASE_TIMEOUT_MS - 30000,
  }).catch((err) => {
    err.message += `\n--- virtiofsd ---\n${records.map((r) => r.msg).join('\n')}`;
    throw err;
  });
  // Awaited by the test; a test that fails first must not leave it an unhandled rejection.
  guest.catch(() => {});
  return guest;
}

for (const dialect of DIALECTS) {
  test(
    `${dialect}: openFds grows with the files a guest holds open, falls when it closes them, and matches /proc`,
    { timeout: CASE_TIMEOUT_MS },
    async (t) => {
      const { share, socketPath } = makeShare(t);
      fs.writeFileSync(path.join(share, 'guest.sh'), guestScript(1));
      const { logger, records } = captureLogger();
      const daemon = new Virtiofsd({ path: virtiofsdPath(dialect), socketPath, sourcePath: share, logger });
      t.after(() => daemon.stop());
      const pid = await daemon.start();
      const guest = boot(t, daemon, records);
      // Before the guest opens anything, but after it has mounted the share (the script runs from it).
      await guestSays(share, 'state-open1').catch(async (err) => {
        await guest.catch((e) => assert.fail(`${err.message}; the guest: ${e.message}`));
        throw err;
      });
      const open = await settledFds(daemon, pid);
      hostSays(share, 'go-open1');
      await guestSays(share, 'state-closed1');
      const closed = await settledFds(daemon, pid);
      hostSays(share, 'go-closed1');
      const result = await guest;
      t.diagnostic(
        `${dialect}: ${open.openFds} fds with ${FILES} files open in the guest (${open.processes} processes), ` +
          `${closed.openFds} once closed`,
      );
      assert.equal(result.status, 0, result.output);
      assert.match(result.output, /^done$/m);
      // Each file the guest holds open costs the daemon two fds: the open file and an O_PATH fd
      // for its inode (both dialects here reference inodes by O_PATH fd).
      assert.ok(open.openFds >= 2 * FILES, `open ${open.openFds}`);
      // Closing gives the open files back; the inodes' O_PATH fds stay until the guest forgets
      // them (microvm.nix #472), and the two markers the guest looked up meanwhile add theirs.
      assert.ok(open.openFds - closed.openFds >= FILES - 2, `open ${open.openFds}, closed ${closed.openFds}`);
      assert.ok(closed.openFds >= FILES, `closed ${closed.openFds}`);
      assert.ok(open.fdLimit > open.openFds);
    },
  );
}

test(
  'rust, rlimitNofile 1200, fdWarnRatio 0.3: one warning per crossing, from the shared timer, re-armed once the guest closes',
  { timeout: CASE_TIMEOUT_MS },
  async (t) => {
    const { share, socketPath } = makeShare(t);
    fs.writeFileSync(path.join(share, 'guest.sh'), guestScript(2));
    const { logger, records } = captureLogger();
    // The Rust daemon keeps ~610 fds of its limit for itself (it refuses less, and says how many
    // are left for the guest): 1200 leaves ~590. Threshold 360; 200 files open make ~430 fds (an
    // open fd and an O_PATH fd each), closing them leaves ~230.
    const daemon = new Virtiofsd({
      path: virtiofsdPath('rust'),
      socketPath,
      sourcePath: share,
      logger,
      rlimitNofile: 1200,
      fdWarnRatio: 0.3,
      fdCheckIntervalMs: 100,
    });
    t.after(() => daemon.stop());
    const pid = await daemon.start();
    const guest = boot(t, daemon, records);
    const warnings = () => records.filter((r) => /is near its open-file limit/.test(r.msg));
    const notes = () => records.filter((r) => /is back below its open-file warning ratio/.test(r.msg));

    for (const round of [1, 2]) {
      await guestSays(share, `state-open${round}`);
      await waitFor(() => warnings().length === round, { timeoutMs: 10000, what: `warning ${round}` });
      await sleep(1000); // ten more timer readings above the ratio: still one warning for this crossing
      assert.equal(warnings().length, round, 'one warning per crossing');
      const w = warnings().at(-1);
      assert.equal(w.level, 40);
      assert.equal(w.fdLimit, 1200);
      assert.equal(w.ratio, 0.3);
      assert.ok(w.openFds >= 360, JSON.stringify(w));
      assert.equal(w.daemonPid, pid);
      assert.ok(
        liveGroupMembers(pid).some((p) => p.pid === w.pid),
        `the warning names a process of the daemon: ${w.pid}`,
      );
      assert.match(w.msg, /virtiofsd is near its open-file limit: \d+ of 1200 fds \(\d+%\) in pid \d+/);
      hostSays(share, `go-open${round}`);
      await guestSays(share, `state-closed${round}`);
      await waitFor(() => notes().length === round, { timeoutMs: 10000, what: `back below ${round}` });
      assert.equal(notes().at(-1).level, 30);
      hostSays(share, `go-closed${round}`);
    }
    const result = await guest;
    assert.equal(result.status, 0, result.output);
    assert.equal(warnings().length, 2);
  },
);

'use strict';
/**
 * Virtiofsd (src/virtiofsd.ts) against the real daemons, in both dialects: what the daemon is
 * given reaches it as given and it serves with it: an odd shared directory, the socket path (its
 * owner, a second daemon on it, one taken over, a stale file), env and fds, every cache mode,
 * debug, and the default binary.
 *
 * The daemons come from $VIRTIOFSD_LEGACY / $VIRTIOFSD_RUST or well-known paths
 * (test/helpers/daemons.js). A missing daemon FAILS its tests with how to get it.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/virtiofsd-inputs.test.js
 */
const { after, describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const lib = require('../dist/index.js');
const native = require('../dist/process/native.js');
const { Virtiofsd, detectDialect, READY_MARKER, InvalidOptionError } = lib;
const h = require('./helpers/daemons.js');
const { captureLogger, isSocket, rejection, tempDir } = require('./helpers/util.js');
const { FACTS, handshake, printTimings, realSetup, startedRecord, timed, track } = require('./helpers/virtiofsd.js');

for (const dialect of h.DIALECTS) {
  const facts = FACTS[dialect];
  const bin = () => h.virtiofsdPath(dialect);

  describe(`virtiofsd ${dialect}`, () => {
    /** A temp dir with a source dir and a socket path; a daemon on them, cleaned up after t. */
    const setup = (t, extra) => realSetup(t, dialect, extra);

    test(
      'a shared directory named "share a,b\\c" works (comma, space, backslash)',
      timed(`${dialect} odd source`, async (t) => {
        const dir = tempDir(t);
        const odd = path.join(dir, 'share a,b\\c');
        fs.mkdirSync(odd);
        const marker = `marker-${process.pid}-${dialect}`;
        fs.writeFileSync(path.join(odd, marker), '');
        const s = setup(t, { sourcePath: odd });
        const pid = await s.start();
        const { argv } = startedRecord(s.records);
        if (dialect === 'legacy') {
          assert.ok(argv.includes(`source=${dir}/share a\\,b\\\\c`), JSON.stringify(argv));
        } else {
          assert.ok(argv.includes(`--shared-dir=${odd}`), JSON.stringify(argv));
        }
        const { client } = await handshake(s.socketPath);
        // After the handshake, a process of the group has the shared dir as its root (it
        // pivoted/chrooted there): stat through /proc/<pid>/root shows the same inode, and the
        // marker file is visible there.
        const src = fs.statSync(odd);
        const rooted = await h.waitFor(
          () =>
            h.liveGroupMembers(pid).find((p) => {
              try {
                const st = fs.statSync(`/proc/${p.pid}/root`);
                return st.ino === src.ino && st.dev === src.dev && fs.existsSync(`/proc/${p.pid}/root/${marker}`);
              } catch {
                return false;
              }
            }),
          { timeoutMs: 3000, what: 'a group process rooted in the shared dir' },
        );
        t.diagnostic(`${dialect}: pid ${rooted.pid} (${rooted.comm}) has the shared dir as its root`);
        await s.d.stop();
        await client.closed;
        assert.equal(fs.existsSync(s.socketPath), false);
      }),
    );

    test(
      'socket directory owned by 65534: the socket is chowned to 65534:65534; handshake works',
      timed(`${dialect} chown`, async (t) => {
        const dir = tempDir(t);
        const sockDir = path.join(dir, 'run');
        fs.mkdirSync(sockDir);
        fs.chownSync(sockDir, 65534, 65534);
        fs.chmodSync(sockDir, 0o755);
        const s = setup(t, { socketPath: path.join(sockDir, 'v.sock') });
        await s.start();
        const st = fs.lstatSync(s.socketPath);
        assert.ok(st.isSocket());
        assert.equal(st.uid, 65534);
        assert.equal(st.gid, 65534);
        assert.deepEqual(startedRecord(s.records).owner, { uid: 65534, gid: 65534 });
        const { client } = await handshake(s.socketPath);
        await s.d.stop();
        await client.closed;
        assert.equal(fs.existsSync(s.socketPath), false);
      }),
    );

    test(
      'a second daemon on the same socket path fails with EADDRINUSE; the first keeps its socket',
      timed(`${dialect} same socket`, async (t) => {
        const a = setup(t);
        await a.start();
        const { logger } = captureLogger();
        const b = new Virtiofsd({ path: bin(), socketPath: a.socketPath, sourcePath: a.sourcePath, logger });
        track(t, b);
        const fd0 = h.fdCount();
        const err = await rejection(b.start(), 'second daemon on the same socket');
        assert.equal(h.fdCount(), fd0, 'an fd was leaked');
        assert.equal(err.code, 'EADDRINUSE', `${err.name}: ${err.message}`);
        assert.equal(err.option, 'socketPath');
        assert.equal(b.pid, 0);
        assert.ok(isSocket(a.socketPath), "the first daemon's socket was removed");
        const { client } = await handshake(a.socketPath);
        await a.d.stop();
        await client.closed;
        await b.stop();
      }),
    );

    test(
      "stopping a daemon whose socket path was taken over by another leaves the other's socket alone",
      timed(`${dialect} socket identity`, async (t) => {
        const a = setup(t);
        const pidA = await a.start();
        fs.unlinkSync(a.socketPath); // someone removes A's socket file ...
        const { logger } = captureLogger();
        const b = new Virtiofsd({ path: bin(), socketPath: a.socketPath, sourcePath: a.sourcePath, logger });
        const pgidsB = track(t, b);
        const pidB = await b.start(); // ... and B binds a new one at the same path
        pgidsB.add(pidB);
        const inoB = fs.lstatSync(a.socketPath).ino;
        await a.d.stop();
        assert.deepEqual(h.liveGroupMembers(pidA), []);
        assert.ok(isSocket(a.socketPath), "B's socket was removed by A's stop()");
        assert.equal(fs.lstatSync(a.socketPath).ino, inoB);
        const { client } = await handshake(a.socketPath);
        await b.stop();
        await client.closed;
        assert.equal(fs.existsSync(a.socketPath), false);
      }),
    );

    test(
      'a stale socket file at the path (nobody listening) is replaced',
      timed(`${dialect} stale socket`, async (t) => {
        const s = setup(t);
        const stale = native.listenUnix(s.socketPath);
        native.closeFd(stale.fd);
        assert.ok(isSocket(s.socketPath));
        await s.start();
        const { client } = await handshake(s.socketPath);
        await s.d.stop();
        await client.closed;
        assert.equal(fs.existsSync(s.socketPath), false);
      }),
    );

    test(
      'env reaches the daemon as given (and nothing of ours); the daemon is not handed our fds',
      timed(`${dialect} env`, async (t) => {
        const s = setup(t, { env: { VFSD_TEST: 'x y,z' } });
        const pid = await s.start();
        const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
        assert.ok(environ.includes('VFSD_TEST=x y,z'), JSON.stringify(environ));
        assert.ok(!environ.some((v) => v.startsWith('PATH=')), `our PATH leaked: ${JSON.stringify(environ)}`);
        const fds = fs
          .readdirSync(`/proc/${pid}/fd`)
          .map(Number)
          .sort((a, b) => a - b);
        const target = (fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        assert.equal(target(0), '/dev/null');
        assert.equal(target(1), '/dev/null');
        assert.match(target(2), /^pipe:/);
        if (dialect === 'legacy') {
          // The legacy daemon keeps exactly what we gave it while it waits.
          assert.deepEqual(fds, [0, 1, 2, 3]);
          assert.match(target(3), /^socket:/);
        }
        const { client } = await handshake(s.socketPath);
        await s.d.stop();
        await client.closed;
      }),
    );

    test(
      `every cache mode the dialect knows (${facts.cacheModes.join(', ')}) starts and serves`,
      timed(`${dialect} cache modes`, async (t) => {
        for (const cache of facts.cacheModes) {
          const s = setup(t, { cache });
          await s.start();
          const { argv } = startedRecord(s.records);
          const expected = dialect === 'legacy' ? `cache=${cache === 'never' ? 'none' : cache}` : `--cache=${cache}`;
          assert.ok(argv.includes(expected), `${cache}: ${JSON.stringify(argv)}`);
          const { client } = await handshake(s.socketPath);
          await s.d.stop();
          await client.closed;
        }
      }),
    );

    test(
      'debug: true starts (the ready marker is found behind debug prefixes) and serves',
      timed(`${dialect} debug`, async (t) => {
        const s = setup(t, { debug: true });
        await s.start();
        const { argv } = startedRecord(s.records);
        assert.ok(argv.includes(dialect === 'legacy' ? '-d' : '--log-level=debug'), JSON.stringify(argv));
        const { client } = await handshake(s.socketPath);
        await s.d.stop();
        await client.closed;
        const ready = s.records.find((r) => typeof r.msg === 'string' && r.msg.includes(READY_MARKER));
        assert.ok(ready, 'the ready line was logged');
        t.diagnostic(
          `${dialect} debug: ${s.records.length} records, levels ${JSON.stringify([...new Set(s.records.map((r) => r.level))])}`,
        );
      }),
    );
  });
}

describe('default binary (no path, no $VIRTIOFSD)', () => {
  test('the first well-known virtiofsd is found, its dialect detected, and it serves; or the error says how to install one', async (t) => {
    const saved = process.env.VIRTIOFSD;
    delete process.env.VIRTIOFSD;
    t.after(() => {
      if (saved !== undefined) process.env.VIRTIOFSD = saved;
    });
    const dir = tempDir(t);
    const socketPath = path.join(dir, 'v.sock');
    const { logger, records } = captureLogger();
    const d = new Virtiofsd({ socketPath, sourcePath: dir, logger });
    track(t, d);
    const first = lib.WELL_KNOWN_VIRTIOFSD_PATHS.find((p) => {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (!first) {
      const err = await rejection(d.start(), 'no virtiofsd installed');
      assert.ok(err instanceof InvalidOptionError);
      assert.equal(err.option, 'path');
      assert.match(err.message, /apt install virtiofsd/);
      assert.equal(fs.existsSync(socketPath), false);
      return;
    }
    await d.start();
    const rec = startedRecord(records);
    assert.equal(rec.argv[0], first);
    assert.equal(rec.dialect, await detectDialect(first));
    t.diagnostic(`default binary: ${first} (${rec.dialect})`);
    const { client } = await handshake(socketPath);
    await d.stop();
    await client.closed;
    assert.equal(fs.existsSync(socketPath), false);
  });
});

// The aggregate of this file's timed() tests (each also reports its own as a diagnostic).
after(printTimings);

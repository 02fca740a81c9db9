'use strict';
/**
 * handle() and adopt() against the real daemons (both virtiofsd dialects, nydusd through its
 * stand-in): a surviving daemon is taken over by a new manager with the lines it logged while
 * it had none; a handle that no longer names that very daemon - pid reused, another boot,
 * hand-edited - is refused with a typed error and never leads to a signal; two managers never
 * both hold one daemon.
 *
 * Run: node --test --test-concurrency=1 test/adopt.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');
const { Nydusd, NydusClient, Virtiofsd, VirtiofsDaemonError, cgroup2Mount } = require('../dist/index.js');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const h = require('./helpers/daemons.js');
const { KINDS, spec, startManager, running } = require('./helpers/lifetime.js');

const { captureLogger, rejection, sleep, tempDir } = require('./helpers/util.js');

/** The class that adopts daemons of kind `k`. */
const Kind = (k) => (k.kind === 'nydusd' ? Nydusd : Virtiofsd);

/** What each daemon logs while no manager reads it (a front-end connecting, requests served). */
const BETWEEN = {
  'virtiofsd legacy': /virtio_loop: Got VU event/,
  'virtiofsd rust': /Client connected, servicing requests/,
  nydusd: /front-end connected|<--- GET/,
};

describe('survive, manager SIGKILLed, adopted by a new manager', () => {
  for (const k of KINDS) {
    test(`${k.name}: keeps serving and logging; the new manager gets the lines logged in between, stops it; nothing left`, async (t) => {
      const { child, handles, exited } = await startManager(t, [spec(t, k, { lifetime: 'survive', debug: true })]);
      const [hd] = handles;
      assert.equal(hd.kind, k.kind);
      assert.equal(hd.lifetime, 'survive');
      assert.ok(hd.log && hd.log.fd >= 3, `the output pipe is parked in the daemon: ${JSON.stringify(hd.log)}`);
      child.kill('SIGKILL');
      await exited;

      // No manager now. A front-end connects and is served; the daemon logs about it. Our fds
      // before, to prove that nothing of the adoption stays with the new manager (this process).
      const fdsBefore = h.fdCount();
      const vhost = k.kind === 'nydusd' ? hd.sockets.sock.path : hd.sockets.socket.path;
      const fe = await connectVhostUser(vhost);
      t.after(() => fe.close());
      if (k.kind === 'virtiofsd') for (let i = 0; i < 5; i++) await fe.getFeatures();
      else {
        const c = new NydusClient(hd.sockets.api.path, { timeoutMs: 3000 });
        assert.equal((await c.daemonInfo()).state, 'RUNNING');
        c.close();
      }
      await sleep(200);
      assert.ok(running(hd), 'the daemon runs without a manager');

      // A new manager: this process.
      const { logger, records } = captureLogger();
      const quits = [];
      const json = JSON.parse(JSON.stringify(hd));
      const since = process.hrtime.bigint();
      const Kind = k.kind === 'nydusd' ? Nydusd : Virtiofsd;
      const d = await Kind.adopt(json, { logger, onQuit: (e) => quits.push(e) });
      t.diagnostic(`adopt took ${(Number(process.hrtime.bigint() - since) / 1e6).toFixed(2)} ms`);
      assert.equal(d.pid, hd.pid);
      assert.deepEqual(d.handle(), hd, 'the adopted daemon hands out the same handle');
      await h.waitFor(() => records.some((r) => BETWEEN[k.kind === 'nydusd' ? 'nydusd' : k.name].test(r.msg)), {
        timeoutMs: 3000,
        what: 'the lines logged while no manager was attached',
      });
      const daemonLines = records.filter((r) => r.subsystem === k.kind && !/adopted/.test(r.msg)).length;
      t.diagnostic(`${daemonLines} lines logged without a manager were delivered after re-adoption`);

      // Still serving under its new manager.
      if (k.kind === 'virtiofsd') assert.ok((await fe.getFeatures()) > 0n);
      else if (!process.env.NYDUSD) {
        // mount/umount through the API socket named in the handle (a fake RAFS v5 bootstrap:
        // the stand-in checks only its superblock magic; a real nydusd needs a real image).
        const source = path.join(path.dirname(hd.sockets.api.path), 'image.boot');
        const sb = Buffer.alloc(8192);
        sb.writeUInt32LE(0x52414653, 0);
        sb.writeUInt32LE(0x500, 4);
        sb.writeUInt32LE(8192, 8);
        fs.writeFileSync(source, sb);
        const blobs = path.dirname(source);
        const config = JSON.stringify({
          version: 2,
          id: 'adopted',
          backend: { type: 'localfs', localfs: { dir: blobs } },
          cache: { type: 'filecache', filecache: { work_dir: blobs } },
        });
        await d.mount({ source, mountpoint: '/rafs/adopted/lowerdir', config });
        await d.umount('/rafs/adopted/lowerdir');
      }

      await d.stop();
      assert.equal(quits.length, 1, JSON.stringify(quits));
      assert.equal(quits[0].requested, true);
      assert.equal(quits[0].known, true, 'Linux >= 6.15 tells the status of a process that is not our child');
      const expected = k.kind === 'nydusd' ? { code: 0, signal: null } : { code: null, signal: 'SIGKILL' };
      assert.deepEqual({ code: quits[0].code, signal: quits[0].signal }, expected);
      assert.deepEqual(h.liveGroupMembers(hd.pgid), [], 'no process of the group is left');
      for (const s of Object.values(hd.sockets)) assert.equal(fs.existsSync(s.path), false, `${s.path} removed`);
      assert.equal(d.pid, 0);
      await d.stop();
      assert.equal(quits.length, 1, 'onQuit once');
      fe.close();
      await fe.closed;
      await sleep(20);
      assert.equal(h.fdCount(), fdsBefore, `fds: ${JSON.stringify(h.fdTable())}`);
    });
  }

  test('logging more than its pipe holds while unmanaged neither blocks nor kills it; the new manager gets what the pipe held', async (t) => {
    const { child, handles, exited } = await startManager(t, [spec(t, KINDS[0], { lifetime: 'survive', debug: true })]);
    const [hd] = handles;
    child.kill('SIGKILL');
    await exited;
    // Legacy virtiofsd with -d logs two lines (~80 bytes) per request: 8000 requests are more
    // than the 1 MiB pipe holds.
    const fe = await connectVhostUser(hd.sockets.socket.path);
    t.after(() => fe.close());
    for (let i = 0; i < 8000; i++) await fe.getFeatures();
    assert.ok(running(hd), 'the daemon runs');
    let lines = 0;
    const logger = pino({ level: 'debug', base: null }, { write: (s) => JSON.parse(s).subsystem && lines++ });
    const d = await Virtiofsd.adopt(hd, { logger });
    await sleep(500);
    const held = lines;
    t.diagnostic(`${held} of ~16000 lines logged while unmanaged were delivered (the rest did not fit the pipe)`);
    assert.ok(held > 5000 && held < 16000, `${held} lines delivered`);
    assert.ok((await fe.getFeatures()) > 0n, 'it still serves');
    await h.waitFor(() => lines > held, { timeoutMs: 2000, what: 'a line logged after the adoption' });
    await d.stop();
  });

  test('an adopted daemon that exits by itself: onQuit once with its real status, requested false', async (t) => {
    const { child, handles, exited } = await startManager(t, [spec(t, KINDS[0], { lifetime: 'survive' })]);
    const [hd] = handles;
    child.kill('SIGKILL');
    await exited;
    const quits = [];
    const d = await Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }), onQuit: (e) => quits.push(e) });
    // A front-end that connects and leaves: virtiofsd exits 0 by itself.
    const fe = await connectVhostUser(hd.sockets.socket.path);
    await fe.getFeatures();
    fe.close();
    await h.waitFor(() => quits.length > 0, { timeoutMs: 8000, what: 'onQuit' });
    assert.deepEqual(quits, [{ code: 0, signal: null, requested: false, known: true }]);
    assert.equal(d.pid, 0);
    assert.equal(fs.existsSync(hd.sockets.socket.path), false, 'socket removed');
  });
});

describe('survive in a cgroup of its own', () => {
  for (const k of KINDS) {
    test(`${k.name}: the manager's death leaves the cgroup and its processes; the adopter's stop empties and removes it`, async (t) => {
      const mount = cgroup2Mount();
      assert.ok(mount, 'no cgroup2 entry in /proc/self/mountinfo: this test needs a cgroup v2 hierarchy');
      const base = path.join(mount, `vfd-adopt-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
      t.after(() => fs.rmSync(base, { recursive: true, force: true }));
      const cgroup = path.join(base, 'd');
      const { child, handles, exited } = await startManager(t, [
        spec(t, k, { lifetime: 'survive', cgroup, cgroupCreate: true }),
      ]);
      const [hd] = handles;
      assert.deepEqual(hd.cgroup, { path: cgroup, createdTop: base }, 'the handle names the cgroup');
      child.kill('SIGKILL');
      await exited;
      await sleep(100);
      const members = () =>
        fs.readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      assert.ok(running(hd), 'the daemon outlived its manager');
      assert.ok(members().includes(hd.pid), `the daemon is still in its cgroup: ${members()}`);

      const quits = [];
      const d = await Kind(k).adopt(JSON.parse(JSON.stringify(hd)), {
        logger: pino({ level: 'silent' }),
        onQuit: (e) => quits.push(e),
      });
      assert.ok((await d.stats()).cpuUsageUsec > 0, 'stats() reads the adopted cgroup');
      await d.stop();
      assert.equal(quits.length, 1);
      assert.equal(quits[0].requested, true);
      assert.equal(fs.existsSync(base), false, `the cgroup created for the daemon is removed: ${base}`);
      assert.equal(running(hd), false);
    });
  }

  test('a handle whose cgroup was edited is not sealed (ERR_HANDLE_UNPROVEN); vouched for by the caller, a cgroup that does not hold the daemon is ERR_INVALID_OPTION; nothing is signalled', async (t) => {
    const mount = cgroup2Mount();
    assert.ok(mount, 'no cgroup2 entry in /proc/self/mountinfo: this test needs a cgroup v2 hierarchy');
    const other = fs.mkdtempSync(path.join(mount, 'vfd-other-'));
    t.after(() => fs.rmdirSync(other));
    const { child, handles, exited } = await startManager(t, [spec(t, KINDS[0], { lifetime: 'survive' })]);
    const [hd] = handles;
    child.kill('SIGKILL');
    await exited;
    // The daemon's real cgroup, claimed as created by us up to the hierarchy's root: stop() would rmdir that.
    const v2line = fs
      .readFileSync(`/proc/${hd.pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    const own = { path: path.join(mount, v2line.slice(3)), createdTop: mount };
    for (const cgroup of [
      { path: other, createdTop: other },
      { path: '/tmp', createdTop: null },
      { path: mount, createdTop: null },
      own,
    ]) {
      const sealed = await rejection(Virtiofsd.adopt({ ...hd, cgroup }, { logger: pino({ level: 'silent' }) }));
      assert.equal(sealed.code, 'ERR_HANDLE_UNPROVEN', sealed.message);
      assert.equal(sealed.proof, 'seal');
      // Past the seal (the caller vouches), the cgroup is still checked against the process.
      const err = await rejection(
        Virtiofsd.adopt({ ...hd, cgroup }, { logger: pino({ level: 'silent' }), trust: 'caller' }),
      );
      assert.equal(err.code, 'ERR_INVALID_OPTION', err.message);
      assert.equal(err.option, 'handle.cgroup', err.message);
      assert.ok(running(hd), 'the daemon is untouched');
    }
    assert.ok(fs.existsSync(other), 'the other cgroup is untouched');
    // The refused adoptions let go of the daemon: a correct handle is adopted.
    const d = await Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) });
    await d.stop();
  });

  test('a handle whose cgroup also holds a stranger is ERR_INVALID_OPTION: stop() would kill the stranger', async (t) => {
    const mount = cgroup2Mount();
    assert.ok(mount, 'no cgroup2 entry in /proc/self/mountinfo: this test needs a cgroup v2 hierarchy');
    const base = path.join(mount, `vfd-adopt-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    const cgroup = path.join(base, 'd');
    const { child, handles, exited } = await startManager(t, [
      spec(t, KINDS[0], { lifetime: 'survive', cgroup, cgroupCreate: true }),
    ]);
    const [hd] = handles;
    child.kill('SIGKILL');
    await exited;
    const stranger = cp.spawn('sleep', ['60'], { stdio: 'ignore' });
    t.after(() => {
      stranger.kill('SIGKILL');
      fs.rmSync(base, { recursive: true, force: true });
    });
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(stranger.pid));
    const err = await rejection(Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) }));
    assert.equal(err.code, 'ERR_INVALID_OPTION', err.message);
    assert.match(err.message, new RegExp(`also holds process ${stranger.pid}`));
    assert.ok(running(hd), 'the daemon is untouched');
    assert.equal(stranger.exitCode, null, 'the stranger is untouched');
    assert.equal(stranger.signalCode, null, 'the stranger is untouched');
    // Back out of the daemon's cgroup, and the handle is good again.
    fs.writeFileSync(path.join(mount, 'cgroup.procs'), String(stranger.pid));
    const d = await Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) });
    await d.stop();
    assert.equal(stranger.signalCode, null, 'stop() did not reach the stranger');
    assert.equal(fs.existsSync(base), false);
  });
});

describe('adoption refused: typed errors, never a signal', () => {
  /** A surviving legacy virtiofsd whose manager was SIGKILLed: { hd, dir }. */
  async function orphan(t) {
    const s = spec(t, KINDS[0], { lifetime: 'survive' });
    const { child, handles, exited } = await startManager(t, [s]);
    child.kill('SIGKILL');
    await exited;
    return { hd: handles[0], dir: s.dir };
  }

  /**
   * A process that records every catchable signal it gets in `file` and runs until SIGKILLed
   * (we do it after t). `atPid`: it must get exactly this pid (as root, through
   * /proc/sys/kernel/ns_last_pid; retried while other processes race us for it).
   */
  async function sentinel(t, file, atPid) {
    const sigs = 'HUP INT QUIT USR1 USR2 PIPE ALRM TERM CONT TSTP TTIN TTOU';
    const body = `for s in ${sigs}; do trap "echo $s >> '${file}'" $s; done; while :; do sleep 0.05; done`;
    for (let attempt = 0; attempt < 200; attempt++) {
      if (atPid) {
        try {
          fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(atPid - 1));
        } catch (err) {
          assert.fail(
            `handing pid ${atPid} to a sentinel needs root (writing /proc/sys/kernel/ns_last_pid: ${err.code})`,
          );
        }
      }
      const c = cp.spawn('/bin/sh', ['-c', body], { stdio: 'ignore' });
      t.after(() => c.kill('SIGKILL'));
      if (!atPid || c.pid === atPid) {
        await sleep(100); // the traps are set
        return c;
      }
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
    }
    assert.fail(`could not start a process with pid ${atPid} (other processes kept taking it)`);
  }

  function assertUntouched(c, file) {
    const st = h.procStat(c.pid);
    assert.ok(st && st.state !== 'Z' && st.state !== 'T', `the sentinel runs: ${JSON.stringify(st)}`);
    assert.equal(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', '', 'the sentinel received no signal');
  }

  test('pid reuse: the daemon died unmanaged, its pid went to a sentinel; adopt is ERR_DAEMON_GONE and the sentinel gets nothing', async (t) => {
    const { hd, dir } = await orphan(t);
    // The daemon dies while no manager is attached; init reaps it.
    process.kill(hd.pid, 'SIGKILL');
    await h.waitFor(() => h.procStat(hd.pid) === null, { timeoutMs: 10000, what: `pid ${hd.pid} to be reaped` });
    const file = path.join(dir, 'signals');
    const c = await sentinel(t, file, hd.pid);
    assert.equal(c.pid, hd.pid, 'the sentinel has the daemon pid');
    const err = await rejection(Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) }));
    assert.ok(err instanceof VirtiofsDaemonError, String(err));
    assert.equal(err.code, 'ERR_DAEMON_GONE', err.message);
    assert.match(err.message, /now belongs to a process started at tick/);
    await sleep(200);
    assertUntouched(c, file);
  });

  test('a hand-edited pid that names a live process is ERR_DAEMON_GONE (its start time is not the handle’s), sealed or vouched for; that process gets nothing', async (t) => {
    const { hd, dir } = await orphan(t);
    const file = path.join(dir, 'signals');
    const c = await sentinel(t, file);
    for (const trust of ['sealed', 'caller']) {
      const err = await rejection(Virtiofsd.adopt({ ...hd, pid: c.pid, pgid: c.pid }, { trust }));
      assert.equal(err.code, 'ERR_DAEMON_GONE', err.message);
    }
    await sleep(200);
    assertUntouched(c, file);
    assert.ok(running(hd), 'the real daemon is untouched too');
    (await Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) })).stop();
  });

  test('double adoption: refused while the starter or an adopter holds the daemon; allowed once it is released', async (t) => {
    const dir = tempDir(t);
    const silent = pino({ level: 'silent' });
    // Held by the manager that started it (this process).
    const d = new Virtiofsd({
      path: KINDS[0].path(),
      socketPath: path.join(dir, 'v.sock'),
      sourcePath: dir,
      lifetime: 'survive',
      logger: silent,
    });
    t.after(() => d.stop());
    await d.start();
    const hd = d.handle();
    let err = await rejection(Virtiofsd.adopt(hd, { logger: silent }));
    assert.equal(err.code, 'ERR_DAEMON_ADOPTED', err.message);
    await d.stop();

    // Held by an adopter: a second adopter, in another process, is refused.
    const o = await orphan(t);
    const first = await Virtiofsd.adopt(o.hd, { logger: silent });
    t.after(() => first.stop());
    const probe = cp.spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.js'))}).Virtiofsd.adopt(${JSON.stringify(o.hd)}).then(() => console.log('adopted'), (e) => console.log(e.code))`,
      ],
      { encoding: 'utf8', timeout: 10000 },
    );
    assert.equal(probe.stdout.trim(), 'ERR_DAEMON_ADOPTED', probe.stderr);
    err = await rejection(Virtiofsd.adopt(o.hd, { logger: silent }));
    assert.equal(err.code, 'ERR_DAEMON_ADOPTED');
    assert.ok(running(o.hd), 'the daemon is unharmed');
    // The adopter dies (here: lets go by stopping) - a later adopt finds it gone, not held.
    await first.stop();
    err = await rejection(Virtiofsd.adopt(o.hd, { logger: silent }));
    assert.equal(err.code, 'ERR_DAEMON_GONE');
  });

  test('a handle from another boot is ERR_DAEMON_GONE; the daemon is untouched', async (t) => {
    const { hd } = await orphan(t);
    const other = { ...hd, bootId: '00000000-0000-4000-8000-000000000000' };
    const err = await rejection(Virtiofsd.adopt(other));
    assert.equal(err.code, 'ERR_DAEMON_GONE', err.message);
    assert.match(err.message, /another boot/);
    assert.ok(running(hd));
    const fe = await connectVhostUser(hd.sockets.socket.path);
    assert.ok((await fe.getFeatures()) > 0n, 'it still serves');
    fe.close();
  });

  test('corrupted or hand-edited handles are ERR_INVALID_OPTION naming the field; the daemon is untouched', async (t) => {
    const { hd } = await orphan(t);
    const cases = [
      [null, /not an object/],
      ['{"format":1}', /not an object/],
      [[], /not an object/],
      [{}, /format/],
      [{ ...hd, format: 3 }, /format is 3/],
      [
        { ...hd, format: 1 },
        /format is 1, not 2 \(a format-1 handle of virtiofs-daemon 0.1 is taken with trust: 'caller'\)/,
      ],
      [{ ...hd, uid: -1 }, /uid/],
      [{ ...hd, uid: '0' }, /uid/],
      [{ ...hd, seal: undefined }, /seal/],
      [{ ...hd, seal: 'x' }, /seal/],
      [{ ...hd, kind: 'nydusd' }, /kind is 'nydusd'/],
      [{ ...hd, kind: 'qemu' }, /kind/],
      [{ ...hd, pid: String(hd.pid) }, /pid/],
      [{ ...hd, pid: -1, pgid: -1 }, /pid/],
      [{ ...hd, pid: 1, pgid: 1 }, /pid/],
      [{ ...hd, pgid: hd.pid + 1 }, /pgid/],
      [{ ...hd, startTime: 'yesterday' }, /startTime/],
      [{ ...hd, startTime: Number(hd.startTime) }, /startTime/],
      [{ ...hd, bootId: 'x' }, /bootId/],
      [{ ...hd, exe: null }, /exe/],
      [{ ...hd, argv: [] }, /argv/],
      [{ ...hd, lifetime: 'forever' }, /lifetime/],
      [{ ...hd, sourcePath: 'share' }, /sourcePath/],
      [{ ...hd, sockets: {} }, /sockets.socket/],
      [{ ...hd, sockets: { socket: { ...hd.sockets.socket, path: 'relative' } } }, /sockets.socket.path/],
      [{ ...hd, log: { fd: 1, pipeIno: hd.log.pipeIno } }, /log.fd/],
    ];
    for (const [handle, re] of cases) {
      const err = await rejection(Virtiofsd.adopt(handle));
      assert.equal(err.code, 'ERR_INVALID_OPTION', `${JSON.stringify(handle)}: ${err}`);
      assert.equal(err.option, 'handle');
      assert.match(err.message, re);
    }
    // A plausible but wrong start time is not malformed: that daemon is gone (asked before the seal).
    const edited = { ...hd, startTime: String(Number(hd.startTime) + 1) };
    for (const trust of ['sealed', 'caller']) {
      const err = await rejection(Virtiofsd.adopt(edited, { trust }));
      assert.equal(err.code, 'ERR_DAEMON_GONE');
    }
    assert.ok(running(hd), 'the daemon is untouched');
    const d = await Virtiofsd.adopt(hd, { logger: pino({ level: 'silent' }) });
    await d.stop();
  });
});

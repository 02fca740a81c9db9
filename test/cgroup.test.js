'use strict';
/**
 * The cgroup option (src/cgroup.ts, the native spawn's cgroupFd): a daemon is in its cgroup
 * from its first instruction, stop() leaves nothing of it (descendants that called setsid()
 * included), stats() reads what the cgroup accounts, bad cgroups are typed errors before
 * anything is spawned, and both real virtiofsd dialects run placed in a cgroup.
 *
 * Needs root and a cgroup v2 hierarchy (found from /proc/self/mountinfo); without one these
 * tests FAIL saying so. The stand-in is test/helpers/cgroup-standin.c.
 *
 * Run: node --test --test-concurrency=1 test/cgroup.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');

const { Virtiofsd, Nydusd, InvalidOptionError, VirtiofsDaemonError, cgroup2Mount } = require('../dist/index.js');
const native = require('../dist/process/native.js');
const h = require('./helpers/daemons.js');
const util = require('./helpers/util.js');

const ROOT = path.resolve(__dirname, '..');
const STANDIN = path.join(ROOT, 'build', 'helpers', 'cgroup-standin');
const SLEEPER = path.join(ROOT, 'build', 'helpers', 'sleeper');
const silent = pino({ level: 'silent' });

/** The cgroup v2 mount, or a failure that says why there is none. */
function v2() {
  const mount = cgroup2Mount();
  assert.ok(mount, 'no cgroup2 entry in /proc/self/mountinfo: these tests need a cgroup v2 hierarchy');
  return mount;
}

/** A fresh cgroup name below the v2 mount (relative); everything below it removed after t. */
function cgroupName(t, leaf = 'd') {
  const base = `vfd-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  t.after(() => removeTree(path.join(v2(), base)));
  return `${base}/${leaf}`;
}

function removeTree(dir) {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(path.join(dir, e.name));
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    // No cgroup.kill (Linux < 5.14) or nothing to kill: rmdir says what is left.
  }
  for (let i = 0; i < 100; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if (err.code !== 'EBUSY') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

const tempDir = (t) => util.tempDir(t, 'vfd-cg-');

/** The cgroup v2 line ("0::/path") of a /proc/<pid>/cgroup text. */
const v2Line = (text) => text.split('\n').find((l) => l.startsWith('0::'));

/** A stand-in virtiofsd (rust command line), tracked so that it is stopped after t. */
function standin(t, extra = {}, env = {}) {
  const dir = tempDir(t);
  const out = path.join(dir, 'report');
  const d = new Virtiofsd({
    path: STANDIN,
    dialect: 'rust',
    socketPath: path.join(dir, 'v.sock'),
    sourcePath: dir,
    logger: silent,
    env: { STANDIN_OUT: out, ...env },
    ...extra,
  });
  t.after(() => d.stop());
  return { d, dir, out, socketPath: path.join(dir, 'v.sock') };
}

/** True once pid is gone or a zombie (not running). */
const dead = util.isZombieOrGone;

describe('cgroup v2 mount', () => {
  test('found from /proc/self/mountinfo, and it is a cgroup2 filesystem', () => {
    const mount = v2();
    const line = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === mount);
    assert.match(line, / - cgroup2 /);
    assert.equal(fs.statfsSync(mount).type, 0x63677270);
  });
});

describe('native spawn with cgroupFd', () => {
  for (const method of ['clone', 'procs']) {
    test(`${method}: the child reads its own cgroup first thing, and it is the one asked for`, async (t) => {
      const name = cgroupName(t);
      const dir = path.join(v2(), name);
      fs.mkdirSync(dir, { recursive: true });
      const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      const out = path.join(tempDir(t), 'report');
      let exited;
      const gone = new Promise((r) => (exited = r));
      const child = native.spawn({
        file: STANDIN,
        argv: [STANDIN],
        env: [`STANDIN_OUT=${out}`],
        fds: ['null', 'null', 'null'],
        newProcessGroup: true,
        cgroupFd: fd,
        cgroupMethod: method,
        onExit: exited,
      });
      fs.closeSync(fd);
      await h.waitFor(() => fs.existsSync(out), { what: 'the stand-in report' });
      assert.equal(v2Line(fs.readFileSync(out, 'utf8')), `0::/${name}`);
      assert.equal(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim(), String(child.pid));
      child.signal('SIGKILL');
      await gone;
    });
  }

  test('a cgroup that refuses processes fails the spawn with syscall clone3; nothing is left', async (t) => {
    // A cgroup.procs fd is not a directory: clone3 answers EBADF/ENOTDIR-like errors as it would
    // for a cgroup that cannot take the child.
    const name = cgroupName(t);
    const dir = path.join(v2(), name);
    fs.mkdirSync(dir, { recursive: true });
    const fd = fs.openSync(path.join(dir, 'cgroup.events'), 'r');
    t.after(() => fs.closeSync(fd));
    assert.throws(
      () => native.spawn({ file: SLEEPER, argv: [SLEEPER], fds: ['null', 'null', 'null'], cgroupFd: fd, onExit() {} }),
      (err) => err.syscall === 'clone3' && /in its cgroup/.test(err.message),
    );
    assert.deepEqual(h.liveChildren(), []);
    assert.deepEqual(h.zombieChildren(), []);
  });

  test('killCgroupMembers (the fallback without cgroup.kill) ends every member by pidfd, and nobody outside', async (t) => {
    const name = cgroupName(t);
    const dir = path.join(v2(), name);
    fs.mkdirSync(dir, { recursive: true });
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    t.after(() => fs.closeSync(fd));
    const exits = [];
    const start = (cgroupFd) => {
      let exited;
      exits.push(new Promise((r) => (exited = r)));
      return native.spawn({
        file: SLEEPER,
        argv: [SLEEPER],
        fds: ['null', 'null', 'null'],
        newProcessGroup: true,
        cgroupFd,
        onExit: exited,
      });
    };
    const inside = [start(fd), start(fd), start(fd)];
    const outside = start(undefined);
    t.after(() => outside.signal('SIGKILL'));
    const members = () =>
      fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number).sort();
    assert.deepEqual(members(), inside.map((c) => c.pid).sort());
    native.killCgroupMembers(fd);
    const ends = await Promise.all(exits.slice(0, 3));
    for (const end of ends) assert.equal(end.signal, 'SIGKILL');
    await h.waitFor(() => /^populated 0$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8')), {
      what: 'the cgroup to empty',
    });
    assert.ok(!dead(outside.pid), 'the process outside the cgroup was signalled');
    // An empty cgroup is a no-op, not an error.
    native.killCgroupMembers(fd);
  });

  test('liveGroups answers for many groups at once: a live group true, a gone one false', async () => {
    let exited;
    const gone = new Promise((r) => (exited = r));
    const child = native.spawn({
      file: SLEEPER,
      argv: [SLEEPER],
      fds: ['null', 'null', 'null'],
      newProcessGroup: true,
      onExit: exited,
    });
    const deadGroup = 0x3ffffff0; // above pid_max: no such group
    assert.deepEqual(native.liveGroups([child.pid, deadGroup]), [true, false]);
    child.signal('SIGKILL', { group: true });
    await gone;
    await h.waitFor(() => !native.liveGroups([child.pid])[0], { what: 'the group to empty' });
  });

  test('liveGroups, groupMembers and processFacts refuse what is not a process id, naming the entry', () => {
    // Each would reach kill() or /proc as another process: 0 is our own group, -n is pid n.
    const fns = [
      [native.liveGroups, 'pgids'],
      [native.groupMembers, 'pgids'],
      [native.processFacts, 'pids'],
    ];
    for (const bad of [0, -1, 1.5, NaN, '1', 2 ** 32 + 1]) {
      for (const [fn, name] of fns) {
        assert.throws(
          () => fn([process.pid, bad]),
          (e) => e instanceof InvalidOptionError && e.option === `${name}[1]` && /not a process id/.test(e.message),
          `${fn.name}([pid, ${String(bad)}])`,
        );
      }
    }
    for (const [fn, name] of fns) {
      assert.throws(
        () => fn(process.pid),
        (e) => e instanceof InvalidOptionError && e.option === name,
      );
    }
    // Process ids still get their answers.
    assert.equal(native.processFacts([process.pid])[0].pid, process.pid);
    assert.ok(native.groupMembers([process.pid]).length === 1);
  });
});

describe('Virtiofsd with a cgroup (stand-in daemon)', () => {
  test('cgroupCreate: the daemon is in the new cgroup from its first instruction; stop removes the cgroup', async (t) => {
    const name = cgroupName(t, 'vm1/virtiofsd');
    const s = standin(t, { cgroup: name, cgroupCreate: true });
    const pid = await s.d.start();
    assert.equal(v2Line(fs.readFileSync(s.out, 'utf8')), `0::/${name}`);
    assert.equal(v2Line(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')), `0::/${name}`);
    await s.d.stop();
    assert.equal(fs.existsSync(path.join(v2(), name)), false, 'the created cgroup is removed');
    assert.equal(fs.existsSync(path.join(v2(), path.dirname(name))), false, 'and the parent we created for it');
    assert.equal(fs.existsSync(s.socketPath), false);
  });

  test('an existing cgroup (absolute path): the daemon runs in a fresh child of it, removed after stop; the cgroup stays', async (t) => {
    const dir = path.join(v2(), cgroupName(t));
    fs.mkdirSync(dir, { recursive: true });
    const s = standin(t, { cgroup: dir });
    const pid = await s.d.start();
    const leaf = path.join(v2(), v2Line(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).slice(3));
    assert.equal(path.dirname(leaf), dir);
    assert.match(path.basename(leaf), /^virtiofsd-[0-9a-f]{8}$/);
    assert.equal(fs.readFileSync(path.join(leaf, 'cgroup.procs'), 'utf8').trim(), String(pid));
    await s.d.stop();
    assert.equal(fs.existsSync(leaf), false, "the daemon's child cgroup is removed");
    assert.ok(fs.existsSync(dir), 'a cgroup we did not create stays');
    assert.deepEqual(
      fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()),
      [],
    );
  });

  test('a grandchild that called setsid() does not survive stop() with a cgroup', async (t) => {
    const s = standin(t, { cgroup: cgroupName(t), cgroupCreate: true }, { STANDIN_ESCAPE: '1' });
    const pid = await s.d.start();
    const escaped = Number(
      await h.waitFor(() => fs.existsSync(`${s.out}.escaped`) && fs.readFileSync(`${s.out}.escaped`, 'utf8')),
    );
    const st = h.procStat(escaped);
    assert.notEqual(st.pgrp, pid, 'the grandchild left the process group');
    assert.equal(st.pgrp, escaped, 'and leads a session of its own');
    await s.d.stop();
    assert.ok(dead(escaped), `the setsid() grandchild ${escaped} is still running after stop()`);
  });

  test('without a cgroup the setsid() grandchild escapes stop() (what the README warns about)', async (t) => {
    const s = standin(t, {}, { STANDIN_ESCAPE: '1' });
    await s.d.start();
    const escaped = Number(
      await h.waitFor(() => fs.existsSync(`${s.out}.escaped`) && fs.readFileSync(`${s.out}.escaped`, 'utf8')),
    );
    t.after(() => {
      try {
        process.kill(escaped, 'SIGKILL');
      } catch {
        // Gone already: what the test hopes to be wrong about.
      }
    });
    await s.d.stop();
    assert.ok(!dead(escaped), 'the grandchild outside the process group survives: stop() reaches the group only');
  });

  test('a process that exits with a daemon running takes the whole cgroup with it, setsid() grandchild included', async (t) => {
    const dir = tempDir(t);
    const out = path.join(dir, 'report');
    const name = cgroupName(t);
    const script = `
      const { Virtiofsd } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
      const pino = require(${JSON.stringify(require.resolve('pino'))});
      const d = new Virtiofsd({ path: ${JSON.stringify(STANDIN)}, dialect: 'rust', socketPath: ${JSON.stringify(path.join(dir, 'v.sock'))},
        sourcePath: ${JSON.stringify(dir)}, logger: pino({ level: 'silent' }), cgroup: ${JSON.stringify(name)}, cgroupCreate: true,
        env: { STANDIN_OUT: ${JSON.stringify(out)}, STANDIN_ESCAPE: '1' } });
      d.start().then(async () => {
        while (!require('fs').existsSync(${JSON.stringify(`${out}.escaped`)})) await new Promise((r) => setTimeout(r, 10));
        process.exit(0);
      });`;
    require('node:child_process').execFileSync(process.execPath, ['-e', script], { stdio: 'inherit', timeout: 20000 });
    const escaped = Number(fs.readFileSync(`${out}.escaped`, 'utf8'));
    await h.waitFor(() => dead(escaped), { timeoutMs: 2000, what: `the setsid() grandchild ${escaped} to die` });
  });

  test('stopSignal ignored with a cgroup: cgroup.kill after stopTimeoutMs ends everything', async (t) => {
    const name = cgroupName(t);
    const s = standin(
      t,
      { cgroup: name, cgroupCreate: true, stopSignal: 'SIGUSR2', stopTimeoutMs: 200 },
      { STANDIN_ESCAPE: '1' },
    );
    const pid = await s.d.start();
    // SIGUSR2 kills the stand-in (default action), so the leader goes at once; the setsid()
    // grandchild never gets it, and must still be gone when stop() resolves.
    const escaped = Number(
      await h.waitFor(() => fs.existsSync(`${s.out}.escaped`) && fs.readFileSync(`${s.out}.escaped`, 'utf8')),
    );
    await s.d.stop();
    assert.ok(dead(pid) && dead(escaped));
    assert.equal(fs.existsSync(path.join(v2(), name)), false);
  });

  test('stats(): cpuUsageUsec counts the CPU the daemon burnt; memory/pids only where those controllers are', async (t) => {
    const name = cgroupName(t);
    const s = standin(t, { cgroup: name, cgroupCreate: true }, { STANDIN_BURN_MS: '150' });
    await s.d.start();
    const stats = await s.d.stats();
    assert.ok(stats.cpuUsageUsec >= 100000, `cpuUsageUsec ${stats.cpuUsageUsec} after burning 150 ms of CPU`);
    // The process figures too, over cgroup.procs: here the one stand-in process.
    const procs = fs
      .readFileSync(path.join(v2(), name, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean);
    assert.equal(stats.processes, procs.length);
    assert.equal(stats.openFds, fs.readdirSync(`/proc/${procs[0]}/fd`).length);
    assert.ok(stats.fdLimit > 0 && stats.rssBytes > 0 && stats.threads === 1, JSON.stringify(stats));
    const dir = path.join(v2(), name);
    for (const [key, file] of [
      ['memoryCurrent', 'memory.current'],
      ['pidsCurrent', 'pids.current'],
    ]) {
      if (fs.existsSync(path.join(dir, file))) {
        assert.equal(typeof stats[key], 'number', `${key} from ${file}`);
      } else {
        t.diagnostic(`${file} absent here (controller not enabled in cgroup v2): ${key} left out`);
        assert.equal(key in stats, false);
      }
    }
    await s.d.stop();
    await assert.rejects(s.d.stats(), { code: 'ERR_DAEMON_NOT_RUNNING' });
  });

  test("stats() without a cgroup: what /proc says of the daemon's process group, no cgroup figures", async (t) => {
    const s = standin(t, {}, { STANDIN_BURN_MS: '150' });
    const pid = await s.d.start();
    const stats = await s.d.stats();
    const members = h.liveGroupMembers(pid);
    assert.deepEqual(
      members.map((m) => m.pid),
      [pid],
    );
    assert.equal(stats.processes, 1);
    assert.equal(stats.openFds, fs.readdirSync(`/proc/${pid}/fd`).length);
    assert.equal(
      stats.fdLimit,
      Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))[1]),
    );
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ').map(Number);
    assert.ok(
      Math.abs(stats.rssBytes - statm[1] * 4096) <= 64 * 4096,
      `rss ${stats.rssBytes} vs statm ${statm[1]} pages`,
    );
    assert.equal(stats.threads, 1);
    assert.ok(stats.cpuTimeUsec >= 100000, `cpuTimeUsec ${stats.cpuTimeUsec} after burning 150 ms`);
    for (const key of ['cpuUsageUsec', 'memoryCurrent', 'pidsCurrent']) assert.equal(key in stats, false, key);
    await s.d.stop();
    await assert.rejects(
      s.d.stats(),
      (err) => err instanceof VirtiofsDaemonError && err.code === 'ERR_DAEMON_NOT_RUNNING',
    );
  });
});

test('fdWarnRatio and fdCheckIntervalMs: a bad value makes start() reject naming it, before anything runs', async (t) => {
  for (const [option, value] of [
    ['fdWarnRatio', 1.5],
    ['fdWarnRatio', -0.1],
    ['fdWarnRatio', '0.8'],
    ['fdCheckIntervalMs', 1.5],
    ['fdCheckIntervalMs', -1],
    ['fdCheckIntervalMs', 2 ** 31],
  ]) {
    const s = standin(t, { [option]: value });
    const err = await s.d.start().then(
      () => assert.fail(`${option}: ${value} was accepted`),
      (e) => e,
    );
    assert.ok(err instanceof InvalidOptionError && err.option === option, String(err));
    assert.equal(fs.existsSync(s.socketPath), false);
  }
});

describe('bad cgroups: InvalidOptionError for cgroup before anything is spawned', () => {
  async function refused(t, cgroup, extra, pattern, children = []) {
    const s = standin(t, { cgroup, ...extra });
    const err = await s.d.start().then(
      () => assert.fail('start() resolved'),
      (e) => e,
    );
    assert.ok(err instanceof InvalidOptionError, String(err && err.stack));
    assert.equal(err.option, 'cgroup');
    assert.match(err.message, pattern);
    assert.equal(fs.existsSync(s.socketPath), false, 'no socket file left');
    assert.equal(fs.existsSync(s.out), false, 'nothing was spawned');
    assert.deepEqual(
      h.liveChildren().map((c) => c.pid),
      children,
    );
    return err;
  }

  test('a missing cgroup without cgroupCreate', async (t) => {
    await refused(t, cgroupName(t), {}, /does not exist; create it or pass cgroupCreate: true/);
  });

  test('a directory that is not in a cgroup v2 hierarchy (a temp dir), even with cgroupCreate', async (t) => {
    await refused(t, tempDir(t), {}, /not a cgroup v2 directory; cgroup v2 is mounted at/);
    const missing = path.join(tempDir(t), 'new');
    await refused(t, missing, { cgroupCreate: true }, /not a cgroup v2 directory/);
    assert.equal(fs.existsSync(missing), false, 'nothing created outside cgroup v2');
  });

  test('a cgroup v1 directory, where one is mounted', async (t) => {
    const v1 = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => / - cgroup /.test(l));
    if (!v1) {
      t.diagnostic('no cgroup v1 hierarchy mounted here (a pure v2 host): the v1 case does not arise');
      return;
    }
    await refused(t, v1.split(' ')[4], {}, /not a cgroup v2 directory/);
  });

  test('cgroupCreate: true on the cgroup of a running daemon (stop() would kill it): refused, the daemon runs on', async (t) => {
    const name = cgroupName(t);
    const first = standin(t, { cgroup: name, cgroupCreate: true });
    const pid = await first.d.start();
    await refused(t, name, { cgroupCreate: true }, /exists already, and cgroupCreate: true claims a cgroup/, [pid]);
    assert.ok(!dead(pid));
    await first.d.stop();
  });

  test('a relative path that climbs out of the v2 mount is not created', async (t) => {
    const outside = `../../../tmp/vfd-cg-escape-${process.pid}`;
    await refused(t, outside, { cgroupCreate: true }, /not a cgroup v2 directory/);
    assert.equal(fs.existsSync(`/tmp/vfd-cg-escape-${process.pid}`), false);
  });

  test('Nydusd takes the same option and refuses the same way', async (t) => {
    const dir = tempDir(t);
    const n = new Nydusd({
      path: path.join(__dirname, 'helpers', 'nydusd-standin.js'),
      sockPath: path.join(dir, 'n.sock'),
      apiSockPath: path.join(dir, 'api.sock'),
      sourcePath: dir,
      logger: silent,
      cgroup: path.join(v2(), cgroupName(t)),
    });
    await assert.rejects(n.start(), (err) => err instanceof InvalidOptionError && err.option === 'cgroup');
    assert.deepEqual(h.liveChildren(), []);
  });
});

describe('Nydusd with a cgroup (its stand-in, or $NYDUSD)', () => {
  test('nydusd runs in the cgroup, stats() reads it, stop() empties and removes it', async (t) => {
    const dir = tempDir(t);
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const name = cgroupName(t);
    const n = new Nydusd({
      path: process.env.NYDUSD || path.join(__dirname, 'helpers', 'nydusd-standin.js'),
      sockPath: path.join(dir, 'n.sock'),
      apiSockPath: path.join(dir, 'api.sock'),
      sourcePath: share,
      logger: silent,
      stopTimeoutMs: 1000,
      cgroup: name,
      cgroupCreate: true,
    });
    t.after(() => n.stop());
    const pid = await n.start();
    assert.equal(v2Line(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')), `0::/${name}`);
    assert.ok((await n.stats()).cpuUsageUsec > 0);
    await n.stop();
    assert.equal(fs.existsSync(path.join(v2(), name)), false);
    assert.ok(dead(pid));
  });
});

describe('real virtiofsd in a cgroup', () => {
  for (const dialect of h.DIALECTS) {
    test(`${dialect}: the daemon and its sandbox children are in the cgroup; stop() empties and removes it`, async (t) => {
      const bin = h.virtiofsdPath(dialect);
      const name = cgroupName(t);
      const dir = tempDir(t);
      const d = new Virtiofsd({
        path: bin,
        socketPath: path.join(dir, 'v.sock'),
        sourcePath: dir,
        logger: silent,
        cgroup: name,
        cgroupCreate: true,
      });
      t.after(() => d.stop());
      const pid = await d.start();
      const cg = path.join(v2(), name);
      const procs = fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      assert.ok(procs.includes(pid), `daemon ${pid} in ${JSON.stringify(procs)}`);
      for (const p of procs) assert.equal(v2Line(fs.readFileSync(`/proc/${p}/cgroup`, 'utf8')), `0::/${name}`);
      const stats = await d.stats();
      assert.ok(stats.cpuUsageUsec > 0, JSON.stringify(stats));
      t.diagnostic(`${dialect}: ${procs.length} process(es) in the cgroup; stats ${JSON.stringify(stats)}`);
      await d.stop();
      assert.equal(fs.existsSync(cg), false, 'cgroup removed');
      for (const p of procs) assert.ok(dead(p), `process ${p} of the cgroup still runs`);
    });
  }
});

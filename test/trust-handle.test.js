'use strict';
/**
 * Issue 16, finding 1, tried as a hostile co-tenant would: a real unprivileged user (the VMM user,
 * who owns its VM's directory) forges handles from what anyone can read in /proc, or replaces a
 * socket in its directory, and root's manager must never signal, unlink or send anything because
 * of it. Each attack is followed by a control: the legitimate path still works.
 *
 * Needs root (CI runs as root): the tests create their user with useradd.
 * Run: node --test --test-concurrency=1 test/trust-handle.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const pino = require('pino');
const { Nydusd, Virtiofsd } = require('../dist/index.js');
const { KINDS, spec, startManager, running } = require('./helpers/lifetime.js');
const nh = require('./helpers/nydusd.js');
const { createUser, runAs, spawnAs } = require('./helpers/users.js');
const { rejection, sleep, tempDir } = require('./helpers/util.js');

const silent = pino({ level: 'silent' });

/** A directory for the test that `user` can enter (0755), owned by `owner` (default root). */
function sharedDir(t, owner) {
  const dir = tempDir(t, 'vth-');
  fs.chmodSync(dir, 0o755);
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/**
 * A root "service" that is not ours: a process leading its own group, listening on `svc.sock` in
 * `dir`, writing the name of every signal it catches to `svc.signals`. Killed after the test.
 */
async function rootService(t, dir) {
  const socket = path.join(dir, 'svc.sock');
  const signals = path.join(dir, 'svc.signals');
  const body = `
    const fs = require('fs');
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'])
      process.on(s, () => fs.appendFileSync(${JSON.stringify(signals)}, s + '\\n'));
    require('net').createServer((c) => c.destroy()).listen(${JSON.stringify(socket)}, () => console.log('up'));`;
  const c = cp.spawn(process.execPath, ['-e', body], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  t.after(() => {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  await new Promise((resolve) => c.stdout.once('data', resolve));
  return { pid: c.pid, socket, signals };
}

function assertServiceUntouched(svc) {
  const st = fs.readFileSync(`/proc/${svc.pid}/stat`, 'utf8');
  assert.match(st.slice(st.lastIndexOf(')') + 2), /^[RS] /, 'the service still runs');
  assert.equal(fs.existsSync(svc.signals) ? fs.readFileSync(svc.signals, 'utf8') : '', '', 'it caught no signal');
  assert.ok(fs.statSync(svc.socket).isSocket(), 'its socket file is still there');
}

/**
 * The forger: run as `user`, it reads what anyone may read - /proc/<pid>/stat, the boot id, the
 * executable's and the socket's device and inode by path - and writes a format-2 handle naming
 * process `pid` to `out` (with a made-up seal, and uid 0: root's daemons run as root).
 */
async function forgeAsUser(user, out, { kind, pid, exePath, sockets, uid = 0 }) {
  const body = `
    const fs = require('fs');
    const st = fs.readFileSync('/proc/${pid}/stat', 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const id = (p) => { const s = fs.statSync(p, { bigint: true }); return { dev: String(s.dev), ino: String(s.ino) }; };
    const sockets = {};
    for (const [name, p] of Object.entries(${JSON.stringify(sockets)})) sockets[name] = { path: p, ...id(p) };
    fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify({
      format: 2, kind: ${JSON.stringify(kind)}, uid: ${uid}, pid: ${pid}, pgid: Number(f[2]), startTime: f[19],
      bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
      exe: id(${JSON.stringify(exePath)}), argv: [${JSON.stringify(exePath)}], lifetime: 'survive',
      sourcePath: '/', sockets, log: null, cgroup: null, seal: 'A'.repeat(43),
    }));`;
  const r = await runAs(user, process.execPath, ['-e', body]);
  assert.equal(r.code, 0, `the forger failed: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** A surviving daemon of kind `k` whose manager was SIGKILLed: its handle. */
async function orphan(t, k, extra = {}) {
  const { child, handles, exited } = await startManager(t, [spec(t, k, { lifetime: 'survive', ...extra })]);
  child.kill('SIGKILL');
  await exited;
  return handles[0];
}

describe('forged handles never make root act', () => {
  test('a handle forged from /proc facts of a root service: adopt() is ERR_HANDLE_UNPROVEN (seal); the service gets no signal and keeps its socket', async (t) => {
    const user = createUser(t);
    const dir = sharedDir(t);
    const userDir = sharedDir(t, user);
    const svc = await rootService(t, dir);
    const hd = await forgeAsUser(user, path.join(userDir, 'state.json'), {
      kind: 'virtiofsd',
      pid: svc.pid,
      exePath: process.execPath,
      sockets: { socket: svc.socket },
    });
    const err = await rejection(Virtiofsd.adopt(hd, { logger: silent }));
    assert.equal(err.code, 'ERR_HANDLE_UNPROVEN', err.message);
    assert.equal(err.proof, 'seal');
    assert.match(err.message, /Nothing was signalled, unlinked or sent/);
    await sleep(200);
    assertServiceUntouched(svc);
  });

  test("Nydusd.adopt() of a handle naming the attacker's own process and API socket: ERR_DAEMON_NOT_PERMITTED, with or without the seal; nothing is sent to it", async (t) => {
    const user = createUser(t);
    const userDir = sharedDir(t, user);
    const api = path.join(userDir, 'api.sock');
    const vhost = path.join(userDir, 'vhost.sock');
    const seen = path.join(userDir, 'seen');
    // The attacker's fake nydusd: records every byte it is sent, on either socket.
    const body = `
      const fs = require('fs');
      const serve = () => require('net').createServer((c) => c.on('data', (b) => fs.appendFileSync(${JSON.stringify(seen)}, b)));
      serve().listen(${JSON.stringify(vhost)}, () => serve().listen(${JSON.stringify(api)}, () => console.log('up')));`;
    // setsid makes it lead its own group, as a daemon does (it execs in place: the same pid).
    const fake = spawnAs(t, user, 'setsid', [process.execPath, '-e', body]);
    await new Promise((resolve) => fake.stdout.once('data', resolve));
    // spawnAs runs setpriv, which execs env, which execs setsid, then node: one pid throughout.
    const hd = await forgeAsUser(user, path.join(userDir, 'state.json'), {
      kind: 'nydusd',
      pid: fake.pid,
      exePath: process.execPath,
      sockets: { sock: vhost, api },
      uid: user.uid,
    });
    for (const trust of ['sealed', 'caller']) {
      const err = await rejection(Nydusd.adopt(hd, { logger: silent, trust }));
      assert.equal(err.code, 'ERR_DAEMON_NOT_PERMITTED', `${trust}: ${err.message}`);
      assert.equal(err.uid, user.uid);
    }
    await sleep(200);
    assert.equal(fs.existsSync(seen), false, 'the fake API was sent nothing');
    assert.ok(fs.statSync(api).isSocket(), "the attacker's socket is not ours to unlink");
  });

  test('a handle whose socket names a root service: not sealed; vouched for by the caller, ERR_HANDLE_UNPROVEN (socket): nothing signalled or unlinked; the real daemon is then adopted and stopped', async (t) => {
    const dir = sharedDir(t);
    const svc = await rootService(t, dir);
    const hd = await orphan(t, KINDS[0]);
    const st = fs.statSync(svc.socket, { bigint: true });
    const edited = {
      ...hd,
      sockets: { socket: { path: svc.socket, dev: String(st.dev), ino: String(st.ino) } },
    };
    let err = await rejection(Virtiofsd.adopt(edited, { logger: silent }));
    assert.equal(err.code, 'ERR_HANDLE_UNPROVEN', err.message);
    assert.equal(err.proof, 'seal');
    err = await rejection(Virtiofsd.adopt(edited, { logger: silent, trust: 'caller' }));
    assert.equal(err.code, 'ERR_HANDLE_UNPROVEN', err.message);
    assert.equal(err.proof, 'socket');
    assert.match(err.message, /is listened on by a process that is not virtiofsd/);
    assertServiceUntouched(svc);
    assert.ok(running(hd), 'the daemon is untouched');
    // Control: the genuine handle is adopted; its stop removes its own socket only.
    const d = await Virtiofsd.adopt(hd, { logger: silent });
    await d.stop();
    assert.equal(fs.existsSync(hd.sockets.socket.path), false);
    assertServiceUntouched(svc);
  });

  for (const k of KINDS) {
    test(`${k.name}: a handle whose output pipe or uid was edited is ERR_HANDLE_UNPROVEN (log / uid), even vouched for; a format-1 handle is taken only with trust: 'caller'`, async (t) => {
      const hd = await orphan(t, k);
      assert.ok(hd.log, 'a surviving daemon parks its output pipe');
      const cases = [
        [{ ...hd, log: { ...hd.log, pipeIno: String(BigInt(hd.log.pipeIno) + 1n) } }, 'log'],
        [{ ...hd, log: { ...hd.log, fd: hd.log.fd + 7 } }, 'log'],
        [{ ...hd, uid: 4242 }, 'uid'],
      ];
      for (const [edited, proof] of cases) {
        for (const trust of ['sealed', 'caller']) {
          const err = await rejection(adoptAs(k, edited, trust));
          assert.equal(err.code, 'ERR_HANDLE_UNPROVEN', `${proof}/${trust}: ${err.message}`);
          // The uid is asked of the process before the seal (another user's daemon is "not
          // permitted" whatever its seal); the pipe only past the seal, which covers every field.
          assert.equal(err.proof, trust === 'sealed' && proof !== 'uid' ? 'seal' : proof, err.message);
        }
      }
      assert.ok(running(hd), 'the daemon is untouched');
      const v1 = { ...hd, format: 1 };
      delete v1.uid;
      delete v1.seal;
      let err = await rejection(adoptAs(k, v1, 'sealed'));
      assert.equal(err.code, 'ERR_INVALID_OPTION', err.message);
      assert.match(err.message, /format is 1/);
      const d = await adoptAs(k, v1, 'caller');
      assert.equal(d.pid, hd.pid);
      await d.stop();
      assert.equal(running(hd), false);
    });
  }

  test("a non-root user adopting root's daemon (its genuine, sealed handle) is ERR_DAEMON_NOT_PERMITTED, not 'gone'", async (t) => {
    const user = createUser(t);
    const hd = await orphan(t, KINDS[1]);
    const lib = path.join(__dirname, '..', 'dist', 'index.js');
    const body = `require(${JSON.stringify(lib)}).Virtiofsd.adopt(${JSON.stringify(hd)}, { logger: require(${JSON.stringify(require.resolve('pino'))})({ level: 'silent' }) })
      .then(() => console.log('adopted'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
    const r = await runAs(user, process.execPath, ['-e', body], { env: { XDG_RUNTIME_DIR: '' } });
    const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}');
    assert.equal(out.code, 'ERR_DAEMON_NOT_PERMITTED', `${r.stdout}${r.stderr}`);
    assert.match(out.message, new RegExp(`runs as uid 0, and this process runs as uid ${user.uid}`));
    assert.ok(running(hd), 'the daemon is untouched');
    (await Virtiofsd.adopt(hd, { logger: silent })).stop();
  });
});

/** adopt() through the class of kind `k`. */
function adoptAs(k, handle, trust) {
  return (k.kind === 'nydusd' ? Nydusd : Virtiofsd).adopt(handle, { logger: silent, trust });
}

describe("nydusd's API talks to nydusd only", () => {
  test('the VMM user replaces the API socket in its directory with its own listener: mount() is ERR_NYDUS_API_PEER and the RAFS config (credentials) is never sent; stop() leaves their socket alone', async (t) => {
    const user = createUser(t);
    const w = nh.world(t);
    fs.chmodSync(w.dir, 0o755);
    const sockDir = sharedDir(t, user);
    const d = w.make({ sockPath: path.join(sockDir, 'v.sock'), apiSockPath: path.join(sockDir, 'a.sock') });
    await d.start();
    const seen = path.join(sockDir, 'seen');
    const api = path.join(sockDir, 'a.sock');
    const body = `
      const fs = require('fs');
      fs.unlinkSync(${JSON.stringify(api)});
      require('net').createServer((c) => c.on('data', (b) => fs.appendFileSync(${JSON.stringify(seen)}, b)))
        .listen(${JSON.stringify(api)}, () => console.log('up'));`;
    const thief = spawnAs(t, user, process.execPath, ['-e', body]);
    await new Promise((resolve, reject) => {
      thief.stdout.once('data', resolve);
      thief.once('exit', (code) => reject(new Error(`the thief exited ${code}`)));
    });
    const image = nh.rafsImage(w.dir);
    const config = JSON.stringify({ ...JSON.parse(image.config), registry_auth: 'c2VjcmV0OnRva2Vu' });
    const err = await rejection(d.mount({ mountpoint: '/rafs/a/lowerdir', source: image.bootstrap, config }));
    assert.equal(err.code, 'ERR_NYDUS_API_PEER', err.message);
    assert.match(err.message, new RegExp(`served by pid ${thief.pid} \\(uid ${user.uid}\\), not by nydusd`));
    await sleep(100);
    assert.equal(fs.existsSync(seen), false, 'the thief received nothing');
    await d.stop();
    assert.ok(fs.statSync(api).isSocket(), "a live listener's socket is not ours to remove");
  });

  test('control: with its own socket in place, the same mount reaches nydusd', async (t) => {
    const w = nh.world(t);
    const d = w.make();
    await d.start();
    const image = nh.rafsImage(w.dir);
    await d.mount({ mountpoint: '/rafs/a/lowerdir', source: image.bootstrap, config: image.config });
    await d.umount('/rafs/a/lowerdir');
    await d.stop();
  });
});

describe('the adoption lock', () => {
  test("an unprivileged user holding a flock on the daemon's pidfd does not keep root from adopting and stopping it", async (t) => {
    const user = createUser(t);
    const hd = await orphan(t, KINDS[1]);
    // pidfd_open works on any pid; the old lock was a flock on that very pidfs inode.
    const holder = path.join(tempDir(t, 'vth-'), 'hold.c');
    fs.writeFileSync(
      holder,
      `#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = syscall(SYS_pidfd_open, atoi(argv[1]), 0);
  if (fd < 0 || flock(fd, LOCK_EX) < 0) { perror("lock"); return 1; }
  puts("held"); fflush(stdout);
  pause();
}
`,
    );
    cp.execFileSync('cc', ['-O2', '-o', `${holder}.bin`, holder]);
    fs.chmodSync(path.dirname(holder), 0o755);
    const c = spawnAs(t, user, `${holder}.bin`, [String(hd.pid)]);
    await new Promise((resolve, reject) => {
      c.stdout.once('data', resolve);
      c.once('exit', (code) => reject(new Error(`the holder exited ${code}`)));
    });
    const d = await Virtiofsd.adopt(hd, { logger: silent });
    await d.stop();
    assert.equal(running(hd), false, 'root stopped its daemon');
  });
});

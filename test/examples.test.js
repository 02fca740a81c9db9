'use strict';
/**
 * Every file in examples/ runs here, as a user would run it (`node examples/<file>`), against the
 * real daemons, each bounded: an API change that breaks an example fails CI by the example's name.
 * The examples import 'virtiofs-daemon' by name (the package refers to itself through its
 * "exports"), exactly as a copy in an app would.
 *
 * Run: node --test --test-concurrency=1 test/examples.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers/daemons.js');
const { asUser, createUser } = require('./helpers/users.js');
const { tempDir } = require('./helpers/util.js');

const ROOT = path.join(__dirname, '..');

/** /proc/<pid>/cmdline as an array ([] when it is gone). */
function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

/**
 * Run `node examples/<file> ...args` (as `user` when given, through setpriv with a clean
 * environment), `env` added. Once `ready(stdout)` says it has done its work, `then(stdout)` runs
 * and `signal` is sent (none: it is left to end by itself). Resolves { code, signal, stdout,
 * stderr }; bounded by `timeoutMs`, after which it is SIGKILLed and the test fails with its output.
 */
function runExample(t, file, args, { env = {}, user, ready, then, signal = 'SIGINT', timeoutMs = 30000 } = {}) {
  const argv = [process.execPath, path.join(ROOT, 'examples', file), ...args];
  const [cmd, ...rest] = user ? asUser(user, argv[0], argv.slice(1), env) : argv;
  const child = cp.spawn(cmd, rest, {
    env: user ? undefined : { ...process.env, ...env },
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  let fired = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`examples/${file} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (b) => {
      stdout += b;
      if (fired || !ready || !ready(stdout)) return;
      fired = true;
      Promise.resolve(then?.(stdout)).then(
        () => signal && child.kill(signal),
        (err) => {
          child.kill('SIGKILL');
          reject(err);
        },
      );
    });
    child.stderr.on('data', (b) => (stderr += b));
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr });
    });
  });
}

for (const dialect of ['legacy', 'rust']) {
  describe(`examples with the ${dialect} virtiofsd`, () => {
    const env = () => ({ VIRTIOFSD: h.virtiofsdPath(dialect) });

    test('vm-host.mjs: prints the QEMU options once virtiofsd serves, stops it on SIGINT, exits 0, socket gone', async (t) => {
      const dir = tempDir(t, 'vex-');
      const sock = path.join(dir, 'v.sock');
      const r = await runExample(t, 'vm-host.mjs', [dir, sock], {
        env: env(),
        ready: (out) => out.includes('vhost-user-fs-pci'),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`-chardev socket,id=vfs0,path=${sock}`));
      assert.match(r.stdout, /-object memory-backend-memfd,id=mem,size=2G,share=on/);
      assert.match(r.stderr, /"requested":true/);
      assert.equal(fs.existsSync(sock), false, 'the socket is removed');
    });

    test('kata-style.mjs: Kata keys → a started virtiofsd, stopped, onQuit once with requested: true', async (t) => {
      const dir = tempDir(t, 'vex-');
      const r = await runExample(t, 'kata-style.mjs', [dir, path.join(dir, 'k.sock')], { env: env() });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^started virtiofsd, pid \d+$/m);
      assert.equal(r.stdout.match(/onQuit:/g)?.length, 1, r.stdout);
      assert.match(r.stdout, /requested true/);
      assert.match(r.stdout, /^stopped$/m);
    });

    test('adopt-after-restart.mjs: start leaves a daemon running after its manager exits; stop adopts and stops it', async (t) => {
      const dir = tempDir(t, 'vex-');
      const sock = path.join(dir, 'a.sock');
      const started = await runExample(t, 'adopt-after-restart.mjs', ['start', dir, sock], { env: env() });
      assert.equal(started.code, 0, started.stderr);
      const stateFile = started.stdout.trim();
      const handle = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
      t.after(() => {
        if (!fs.existsSync(stateFile)) return;
        try {
          process.kill(-handle.pgid, 'SIGKILL');
        } catch {
          // gone
        }
        fs.rmSync(stateFile);
      });
      assert.ok(h.procStat(handle.pid), 'the daemon outlives its manager');
      const stopped = await runExample(t, 'adopt-after-restart.mjs', ['stop'], { env: env() });
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stdout, new RegExp(`adopted virtiofsd ${handle.pid}`));
      assert.match(stopped.stdout, /onQuit .*requested: true/);
      assert.equal(fs.existsSync(stateFile), false);
      assert.equal(fs.existsSync(sock), false);
    });

    test('metrics.mjs: /metrics serves the running daemon’s open fds, fd limit and memory, labelled by its id', async (t) => {
      const dir = tempDir(t, 'vex-');
      let scrape = '';
      const r = await runExample(t, 'metrics.mjs', [dir, path.join(dir, 'm.sock'), '0'], {
        env: env(),
        ready: (out) => /http:\S+\/metrics/.test(out),
        then: async (out) => {
          const res = await fetch(/(http:\S+\/metrics)/.exec(out)[1]);
          scrape = await res.text();
        },
      });
      assert.equal(r.code, 0, r.stderr);
      const label = `kind="virtiofsd",dialect="${dialect}",id="vm1"`;
      assert.match(scrape, new RegExp(`^virtiofs_daemon_open_fds\\{${label}\\} [1-9]\\d*$`, 'm'));
      assert.match(scrape, new RegExp(`^virtiofs_daemon_fd_limit\\{${label}\\} \\d+$`, 'm'));
      assert.match(scrape, new RegExp(`^virtiofs_daemon_resident_memory_bytes\\{${label}\\} [1-9]\\d*$`, 'm'));
      assert.match(scrape, /^virtiofs_daemon_starts_total\{kind="virtiofsd",dialect="\w+"\} 1$/m);
    });
  });
}

test('desktop-app.mjs, as an ordinary user: the Rust virtiofsd maps guest user 1000 to the user, the socket is in its runtime directory, Ctrl-C stops it', async (t) => {
  const user = createUser(t, { home: true });
  const share = path.join(user.home, 'shared');
  fs.mkdirSync(share);
  fs.chownSync(share, user.uid, user.gid);
  // No XDG_RUNTIME_DIR (as under su): the runtime directory is /tmp/virtiofs-daemon-<uid>.
  const runtime = `/tmp/virtiofs-daemon-${user.uid}`;
  fs.rmSync(runtime, { recursive: true, force: true });
  t.after(() => fs.rmSync(runtime, { recursive: true, force: true }));
  let argv = [];
  const r = await runExample(t, 'desktop-app.mjs', [share], {
    user,
    env: { VIRTIOFSD: h.virtiofsdPath('rust') },
    ready: (out) => out.includes('vhost-user-fs-pci'),
    then: () => {
      const daemon = h.allProcesses().find((p) => p.state !== 'Z' && cmdline(p.pid).includes(`--shared-dir=${share}`));
      argv = daemon ? cmdline(daemon.pid) : [];
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(argv.includes(`--uid-map=:1000:${user.uid}:1:`), `the daemon's argv: ${JSON.stringify(argv)}`);
  assert.ok(argv.includes(`--gid-map=:1000:${user.gid}:1:`), `the daemon's argv: ${JSON.stringify(argv)}`);
  assert.match(r.stdout, new RegExp(`-chardev socket,id=vfs0,path=${runtime}/virtiofsd-[0-9a-f]{8}\\.sock`));
  assert.deepEqual(
    fs.readdirSync(runtime).filter((f) => f.endsWith('.sock')),
    [],
    'the socket is removed',
  );
});

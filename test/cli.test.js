'use strict';
// The CLI (the README's main job) as a user runs it: a real process, a real virtiofsd, real signals.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const { virtiofsdPath } = require('./helpers/daemons.js');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

/** Start the CLI; resolves { child, stdout(), stderr(), exited } */
function runCli(args, env = process.env) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (err += b));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function until(what, fn, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function tmpdir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfsd-cli-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const daemonPidOf = (stderr) => Number(/"daemonPid":(\d+)/.exec(stderr)?.[1]);

for (const dialect of ['legacy', 'rust']) {
  test(`run (${dialect}): prints QEMU options, serves the socket, stops and cleans up on SIGINT`, async (t) => {
    const dir = tmpdir(t);
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const sock = path.join(dir, 'vfs,1.sock');
    const cli = runCli(['run', '--shared-dir', share, '--socket', sock, '--tag', 'hostshare', '--virtiofsd', virtiofsdPath(dialect)]);
    t.after(() => cli.child.kill('SIGKILL'));

    await until('the QEMU options', () => cli.stdout().includes('-m 2G'));
    // QEMU's option syntax doubles commas inside values.
    assert.match(cli.stdout(), new RegExp(`-chardev socket,id=vfs0,path=${dir.replace(/[/.]/g, '\\$&')}/vfs,,1\\.sock`));
    assert.match(cli.stdout(), /-device vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=hostshare/);
    assert.match(cli.stdout(), /-object memory-backend-memfd,id=mem,size=2G,share=on/);

    const fe = await connectVhostUser(sock);
    const features = await fe.getFeatures();
    assert.equal((features >> 32n) & 1n, 1n, 'VERSION_1');

    const pid = daemonPidOf(cli.stderr());
    assert.ok(pid > 0, 'the log names the daemon pid');
    cli.child.kill('SIGINT');
    const exit = await cli.exited;
    fe.close();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(fs.existsSync(sock), false, 'socket removed');
    assert.equal(fs.existsSync(`/proc/${pid}`), false, 'daemon gone');
    assert.match(cli.stderr(), /virtiofsd quits/);
  });
}

test('run: exit status reflects a daemon killed from outside (128 + SIGKILL)', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli(['run', '--shared-dir', dir, '--socket', sock, '--virtiofsd', virtiofsdPath('rust')]);
  t.after(() => cli.child.kill('SIGKILL'));
  await until('readiness', () => cli.stdout().includes('-chardev'));
  process.kill(daemonPidOf(cli.stderr()), 'SIGKILL');
  const exit = await cli.exited;
  assert.deepEqual(exit, { code: 137, signal: null });
  assert.equal(fs.existsSync(sock), false, 'socket removed');
});

test('run: a daemon that rejects its arguments makes the CLI exit 1 with the daemon\'s words', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli(['run', '--shared-dir', dir, '--socket', sock, '--virtiofsd', virtiofsdPath('legacy'), '--', '--bogus-flag']);
  const exit = await cli.exited;
  assert.deepEqual(exit, { code: 1, signal: null });
  assert.match(cli.stderr(), /unknown option.*--bogus-flag/);
  assert.equal(fs.existsSync(sock), false, 'no socket left');
});

test('run: bad usage exits 2 and says what is missing', async () => {
  const cli = runCli(['run', '--socket', '/tmp/x.sock']);
  assert.deepEqual(await cli.exited, { code: 2, signal: null });
  assert.match(cli.stderr(), /--shared-dir DIR is required/);
  assert.match(cli.stderr(), /Usage: virtiofs-daemon run/);

  const unknown = runCli(['run', '--shared-dir', '/tmp', '--socket', '/tmp/x.sock', '--frobnicate']);
  assert.deepEqual(await unknown.exited, { code: 2, signal: null });
  assert.match(unknown.stderr(), /frobnicate/);
});

test('run: a missing shared directory exits 1 and names the option', async (t) => {
  const dir = tmpdir(t);
  const cli = runCli(['run', '--shared-dir', path.join(dir, 'nope'), '--socket', path.join(dir, 's.sock'), '--virtiofsd', virtiofsdPath('rust')]);
  assert.deepEqual(await cli.exited, { code: 1, signal: null });
  assert.match(cli.stderr(), /sourcePath: '[^']*nope' does not exist/);
  assert.equal(fs.existsSync(path.join(dir, 's.sock')), false);
});

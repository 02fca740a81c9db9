'use strict';
// The CLI (the README's main job) as a user runs it: a real process, a real virtiofsd, real signals.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const { virtiofsdPath } = require('./helpers/daemons.js');
const { tempDir, waitFor } = require('./helpers/util.js');
const { qemuArgs } = require('../dist/index.js');

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

const until = (what, fn) => waitFor(fn, { timeoutMs: 10000, intervalMs: 20, what });

const daemonPidOf = (stderr) => Number(/"daemonPid":(\d+)/.exec(stderr)?.[1]);

for (const dialect of ['legacy', 'rust']) {
  test(`run (${dialect}): prints QEMU options, serves the socket, stops and cleans up on SIGINT`, async (t) => {
    const dir = tempDir(t);
    const share = path.join(dir, 'share');
    fs.mkdirSync(share);
    const sock = path.join(dir, 'vfs,1.sock');
    const cli = runCli([
      'run',
      '--shared-dir',
      share,
      '--socket',
      sock,
      '--tag',
      'hostshare',
      '--virtiofsd',
      virtiofsdPath(dialect),
    ]);
    t.after(() => cli.child.kill('SIGKILL'));

    await until('the QEMU options', () => cli.stdout().includes('-m 2G'));
    // QEMU's option syntax doubles commas inside values.
    assert.match(
      cli.stdout(),
      new RegExp(`-chardev socket,id=vfs0,path=${dir.replace(/[/.]/g, '\\$&')}/vfs,,1\\.sock`),
    );
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
  const dir = tempDir(t);
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli(['run', '--shared-dir', dir, '--socket', sock, '--virtiofsd', virtiofsdPath('rust')]);
  t.after(() => cli.child.kill('SIGKILL'));
  await until('readiness', () => cli.stdout().includes('-chardev'));
  process.kill(daemonPidOf(cli.stderr()), 'SIGKILL');
  const exit = await cli.exited;
  assert.deepEqual(exit, { code: 137, signal: null });
  assert.equal(fs.existsSync(sock), false, 'socket removed');
});

test("run: a daemon that rejects its arguments makes the CLI exit 1 with the daemon's words", async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli([
    'run',
    '--shared-dir',
    dir,
    '--socket',
    sock,
    '--virtiofsd',
    virtiofsdPath('legacy'),
    '--',
    '--bogus-flag',
  ]);
  const exit = await cli.exited;
  assert.deepEqual(exit, { code: 1, signal: null });
  assert.match(cli.stderr(), /unknown option.*--bogus-flag/);
  assert.equal(fs.existsSync(sock), false, 'no socket left');
});

test('run: bad usage exits 2 with one line: what is wrong, and --help', async () => {
  const cli = runCli(['run', '--socket', '/tmp/x.sock']);
  assert.deepEqual(await cli.exited, { code: 2, signal: null });
  assert.equal(cli.stderr(), 'virtiofs-daemon: --shared-dir DIR is required; see virtiofs-daemon --help\n');

  const unknown = runCli(['run', '--shared-dir', '/tmp', '--socket', '/tmp/x.sock', '--frobnicate']);
  assert.deepEqual(await unknown.exited, { code: 2, signal: null });
  assert.equal(unknown.stderr(), "virtiofs-daemon: unknown option '--frobnicate'; see virtiofs-daemon --help\n");
});

test('--version prints the package version and exits 0; --help prints the usage on stdout', async () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
  const v = runCli(['--version']);
  assert.deepEqual(await v.exited, { code: 0, signal: null });
  assert.equal(v.stdout(), `${version}\n`);
  const h = runCli(['--help']);
  assert.deepEqual(await h.exited, { code: 0, signal: null });
  assert.match(h.stdout(), /^Usage: virtiofs-daemon run --shared-dir DIR --socket PATH/);
  assert.match(h.stdout(), /--version/);
});

test('run: an option error names the flag the user typed, not the API option', async (t) => {
  const dir = tempDir(t);
  const bad = runCli([
    'run',
    '--shared-dir',
    dir,
    '--socket',
    path.join(dir, 'no-dir', 's.sock'),
    '--virtiofsd',
    virtiofsdPath('rust'),
  ]);
  assert.deepEqual(await bad.exited, { code: 1, signal: null });
  assert.match(bad.stderr(), /^virtiofs-daemon: --socket: directory '[^']*no-dir' does not exist; create it first$/m);
  assert.doesNotMatch(bad.stderr(), /socketPath/);
});

// What the Rust virtiofsd prints where / is not a mount point (a container, a chroot): the first line is
// virtiofsd 1.13's (Debian 13), seen in a Debian 13 chroot; the second the form the issue quotes.
for (const line of [
  'Error entering sandbox: CleanMount(Os { code: 22, kind: InvalidInput, message: \\"Invalid argument\\" })',
  'Error entering sandbox: CleanMount(EINVAL)',
]) {
  test(`run: the Rust virtiofsd failing with ${line.slice(24, 44)}... points to --sandbox=chroot`, async (t) => {
    const dir = tempDir(t);
    const fake = path.join(dir, 'virtiofsd');
    fs.writeFileSync(fake, `#!/bin/sh\necho "[2026-01-01T00:00:00Z ERROR virtiofsd] ${line}" >&2\nexit 1\n`);
    fs.chmodSync(fake, 0o755);
    const cli = runCli([
      'run',
      '--shared-dir',
      dir,
      '--socket',
      path.join(dir, 's.sock'),
      '--virtiofsd',
      fake,
      '--dialect',
      'rust',
    ]);
    assert.deepEqual(await cli.exited, { code: 1, signal: null });
    assert.match(
      cli.stderr(),
      /virtiofsd exited \(code 1\) before it was ready\. Its namespace sandbox needs '\/' to be a mount point/,
    );
    assert.match(cli.stderr(), /-- --sandbox=chroot/);
    assert.match(cli.stderr(), /\| .*Error entering sandbox: CleanMount/);
    assert.equal(fs.existsSync(path.join(dir, 's.sock')), false, 'no socket left');
  });
}

test('run: a missing shared directory exits 1 and names the flag', async (t) => {
  const dir = tempDir(t);
  const cli = runCli([
    'run',
    '--shared-dir',
    path.join(dir, 'nope'),
    '--socket',
    path.join(dir, 's.sock'),
    '--virtiofsd',
    virtiofsdPath('rust'),
  ]);
  assert.deepEqual(await cli.exited, { code: 1, signal: null });
  assert.match(cli.stderr(), /--shared-dir: '[^']*nope' does not exist/);
  assert.equal(fs.existsSync(path.join(dir, 's.sock')), false);
});

/** GET url: { status, body }. */
async function httpGet(url) {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** The URL the CLI logged for --metrics. */
const metricsUrlOf = (stderr) => /"url":"([^"]+)"/.exec(stderr)?.[1];

test('run --metrics 127.0.0.1:0: /metrics serves the daemon while it runs, and goes with it', async (t) => {
  const parsePrometheus = require('parse-prometheus-text-format');
  const dir = tempDir(t);
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli([
    'run',
    '--shared-dir',
    dir,
    '--socket',
    sock,
    '--tag',
    'vm7',
    '--virtiofsd',
    virtiofsdPath('rust'),
    '--metrics',
    '127.0.0.1:0',
  ]);
  t.after(() => cli.child.kill('SIGKILL'));
  await until('readiness', () => cli.stdout().includes('-chardev'));
  const url = metricsUrlOf(cli.stderr());
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const scrape = await httpGet(url);
  assert.equal(scrape.status, 200);
  assert.match(scrape.type, /^text\/plain; version=0\.0\.4/);
  const families = new Map(parsePrometheus(scrape.body).map((f) => [f.name, f]));
  const fds = families.get('virtiofs_daemon_open_fds').metrics;
  assert.equal(fds.length, 1);
  assert.deepEqual(fds[0].labels, { kind: 'virtiofsd', dialect: 'rust', id: 'vm7' });
  assert.ok(Number(fds[0].value) > 0);
  assert.equal((await httpGet(url.replace('/metrics', '/other'))).status, 404);

  cli.child.kill('SIGINT');
  assert.deepEqual(await cli.exited, { code: 0, signal: null });
  await assert.rejects(fetch(url), 'nothing serves the port once the command has ended');
});

test('run --metrics: a host name is refused (spell out the address); --detach and a bad port are refused', async () => {
  for (const [args, pattern] of [
    [['--metrics', 'metrics.example:9100'], /--metrics: 'metrics\.example' is a name.*spell out the address/],
    [['--metrics', '70000'], /--metrics: port 70000 is not from 0 to 65535/],
    [['--metrics', 'nine'], /--metrics: 'nine' is not \[HOST:\]PORT/],
    [['--metrics', '9100', '--detach', '--state', '/tmp/s.json'], /--metrics goes with run, without --detach/],
  ]) {
    const cli = runCli(['run', '--shared-dir', '/tmp', '--socket', '/tmp/x.sock', ...args]);
    assert.deepEqual(await cli.exited, { code: 2, signal: null }, args.join(' '));
    assert.match(cli.stderr(), pattern);
  }
});

test('run --metrics 0.0.0.0:0: an address spelled out is served, with a warning that it is not loopback', async (t) => {
  const dir = tempDir(t);
  const cli = runCli([
    'run',
    '--shared-dir',
    dir,
    '--socket',
    path.join(dir, 'vfs.sock'),
    '--virtiofsd',
    virtiofsdPath('legacy'),
    '--metrics',
    '0.0.0.0:0',
  ]);
  t.after(() => cli.child.kill('SIGKILL'));
  await until('readiness', () => cli.stdout().includes('-chardev'));
  assert.match(cli.stderr(), /"level":40[^\n]*serving metrics on a non-loopback address/);
  const url = metricsUrlOf(cli.stderr()).replace('0.0.0.0', '127.0.0.1');
  assert.equal((await httpGet(url)).status, 200);
  cli.child.kill('SIGINT');
  assert.deepEqual(await cli.exited, { code: 0, signal: null });
});

test('run --metrics without prom-client installed: exit 1, naming npm install prom-client, before any daemon starts', async (t) => {
  const dir = tempDir(t);
  const hide = path.join(dir, 'hide.js');
  fs.writeFileSync(
    hide,
    `const Module = require('module'); const resolve = Module._resolveFilename;
     Module._resolveFilename = function (request, ...rest) {
       if (request === 'prom-client') throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
       return resolve.call(this, request, ...rest);
     };`,
  );
  const sock = path.join(dir, 'vfs.sock');
  const cli = runCli(
    ['run', '--shared-dir', dir, '--socket', sock, '--virtiofsd', virtiofsdPath('rust'), '--metrics', '0'],
    { ...process.env, NODE_OPTIONS: `-r ${hide}` },
  );
  assert.deepEqual(await cli.exited, { code: 1, signal: null });
  assert.match(cli.stderr(), /--metrics: .*npm install prom-client/);
  assert.equal(fs.existsSync(sock), false, 'no daemon was started');
});

test("run: the printed QEMU options are qemuArgs()'s, shell-quoted: a shell reads them back as the same argv", async (t) => {
  const dir = path.join(tempDir(t), "it's a dir");
  fs.mkdirSync(dir);
  const sock = path.join(dir, 'v,1.sock');
  const cli = runCli(['run', '--shared-dir', dir, '--socket', sock, '--tag', 'my tag', '--memory', '512M']);
  t.after(() => cli.child.kill('SIGKILL'));
  await until('the QEMU options', () => cli.stdout().endsWith('-m 512M\n'));
  assert.match(cli.stdout(), /^-chardev '[^\n]*' \\\n {2}-device '[^\n]*' \\\n {2}-object [^\n]* \\\n {2}-numa /);
  // What a user does with it: paste it after qemu-system-x86_64 in a shell.
  const argv = execFileSync('sh', ['-c', `printf '%s\\n' ${cli.stdout()}`], { encoding: 'utf8' }).split('\n');
  argv.pop();
  assert.deepEqual(argv, qemuArgs({ socketPath: sock, tag: 'my tag', memory: '512M' }));
  cli.child.kill('SIGINT');
  assert.deepEqual(await cli.exited, { code: 0, signal: null });
});

for (const [flag, value, message] of [
  ['--tag', 'x'.repeat(37), /^virtiofs-daemon: --tag: "x{37}" is 37 bytes; virtio-fs holds a tag of at most 36/],
  ['--memory', '2048', /^virtiofs-daemon: --memory: "2048" has no unit.*write '2048M'/],
]) {
  test(`run: a bad ${flag} is bad usage (exit 2) and starts nothing`, async (t) => {
    const dir = tempDir(t);
    const sock = path.join(dir, 's.sock');
    const cli = runCli(['run', '--shared-dir', dir, '--socket', sock, flag, value]);
    assert.deepEqual(await cli.exited, { code: 2, signal: null });
    assert.match(cli.stderr(), message);
    assert.equal(fs.existsSync(sock), false, 'no socket');
  });
}

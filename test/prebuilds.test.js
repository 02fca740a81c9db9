'use strict';
/**
 * The prebuilt addons the npm tarball ships (prebuilds/, built by `npm run build:prebuilds`):
 * each is for the arch its directory names, loads wherever Node's own binaries do (no symbol
 * version newer than glibc 2.28 / libstdc++ 3.4.21, Node 20+'s floor), was built from today's
 * native/ sources, and the arm64 one loads and works under qemu-user. And a missing or
 * unloadable addon is a typed error that names the fix.
 *
 * Needs binutils' readelf (build-essential); the qemu test needs what scripts/setup.sh installs
 * (qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross, .cache/node/linux-arm64-*).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { TARGETS, sourcesDigest } = require('../scripts/prebuild.js');
const { prebuildPath } = require('../scripts/addon-path.js');
const { tempDir } = require('./helpers/util.js');

/** Node 20+'s official Linux binaries need at most these (nodejs.org's BUILDING.md). */
const FLOOR = { GLIBC: [2, 28], GLIBCXX: [3, 4, 21], CXXABI: [1, 3, 9] };

const readelf = (...args) => execFileSync('readelf', ['-W', ...args], { encoding: 'utf8' });

/** `GLIBC_2.33` -> ['GLIBC', [2, 33]], or null for a version we do not bound. */
function parseVersion(v) {
  const m = /^(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)$/.exec(v);
  return m ? [m[1], m[2].split('.').map(Number)] : null;
}

function newer(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return false;
}

for (const target of TARGETS) {
  const file = path.join(root, prebuildPath('linux', target.arch));

  test(`prebuild linux-${target.arch}: is a ${target.arch} shared object`, () => {
    assert.ok(fs.existsSync(file), `${file} is missing: run npm run build:prebuilds`);
    const header = readelf('-h', file);
    const machine = /Machine:\s+(.*)/.exec(header)?.[1];
    assert.equal(machine, target.arch === 'arm64' ? 'AArch64' : 'Advanced Micro Devices X86-64');
    assert.match(header, /Type:\s+DYN/);
  });

  test(`prebuild linux-${target.arch}: needs nothing newer than GLIBC_2.28 / GLIBCXX_3.4.21`, () => {
    // Every symbol with a version above the floor, e.g. "fstat64@GLIBC_2.33": the test's answer.
    const tooNew = [];
    for (const line of readelf('--dyn-syms', file).split('\n')) {
      const m = /\s(\S+)@(\w+_[\d.]+)(?:\s|$)/.exec(line);
      if (!m || !/\sUND\s/.test(line)) continue;
      const parsed = parseVersion(m[2]);
      if (parsed && newer(parsed[1], FLOOR[parsed[0]])) tooNew.push(`${m[1]}@${m[2]}`);
    }
    // The version-needs section is what the dynamic loader checks: it must agree.
    const needed = [...readelf('-V', file).matchAll(/Name: (\w+_[\d.]+)/g)].map((m) => m[1]);
    const neededTooNew = needed.filter((v) => {
      const parsed = parseVersion(v);
      return parsed && newer(parsed[1], FLOOR[parsed[0]]);
    });
    assert.deepEqual(
      { symbols: tooNew.sort(), versions: [...new Set(neededTooNew)].sort() },
      { symbols: [], versions: [] },
      `${path.relative(root, file)} would not load on the oldest glibc Node 20+ supports`,
    );
  });
}

test('prebuilds were built from the native/ sources and binding.gyp of this tree', () => {
  const recorded = fs.readFileSync(path.join(root, 'prebuilds', 'SOURCES.sha256'), 'utf8').trim();
  assert.equal(
    recorded,
    sourcesDigest(),
    'native/ or binding.gyp changed since the prebuilds were made: run npm run build:prebuilds',
  );
});

/**
 * A copy of the package without build/ (so the loader's first choice, a source build, is absent):
 * dist/ and scripts/ copied, since the loader finds the package root from its own real path.
 */
function packageCopy(t, { prebuilds }) {
  const dir = tempDir(t, 'vfsd-pkg-');
  for (const d of ['dist', 'scripts']) fs.cpSync(path.join(root, d), path.join(dir, d), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  for (const [arch, from] of Object.entries(prebuilds)) {
    const dest = path.join(dir, prebuildPath('linux', arch));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(from, dest);
  }
  return dir;
}

/** Runs code in a fresh node (or qemu + node) with dir as cwd; returns its JSON output. */
function runIn(dir, code, cmd = [process.execPath]) {
  const r = spawnSync(cmd[0], [...cmd.slice(1), '-e', code], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `${cmd.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const LOAD_ERROR = `
  const native = require('./dist/process/native.js');
  try { native.removeStaleSocket('/nonexistent/x.sock'); console.log(JSON.stringify({ loaded: true })); }
  catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause && e.cause.message })); }`;

test("no addon at all: ERR_ADDON_NOT_FOUND, naming the paths tried and the fix, bindings' error as cause", (t) => {
  const dir = packageCopy(t, { prebuilds: {} });
  const r = runIn(dir, LOAD_ERROR);
  assert.equal(r.name, 'VirtiofsDaemonError');
  assert.equal(r.code, 'ERR_ADDON_NOT_FOUND');
  assert.match(r.message, new RegExp(`no prebuilt one for linux-${process.arch}`));
  assert.ok(r.message.includes(path.join(dir, prebuildPath('linux', process.arch))), r.message);
  assert.match(r.message, /npm rebuild virtiofs-daemon/);
  assert.match(r.message, /pnpm approve-builds/);
  assert.match(r.message, /build-essential python3/);
  assert.match(r.cause, /Could not locate the bindings file/);
});

test("an addon the dynamic loader refuses (another arch): ERR_ADDON_LOAD with the loader's reason", (t) => {
  const wrongArch = TARGETS.find((x) => x.arch !== process.arch);
  const dir = packageCopy(t, { prebuilds: { [process.arch]: path.join(root, prebuildPath('linux', wrongArch.arch)) } });
  const r = runIn(dir, LOAD_ERROR);
  assert.equal(r.code, 'ERR_ADDON_LOAD');
  assert.match(r.message, /cannot be loaded on this machine/);
  // glibc's reason for an ELF of another machine is "cannot open shared object file" (sic); it names the file.
  assert.ok(
    r.message.includes(`${path.join(dir, prebuildPath('linux', process.arch))}: cannot open shared object`),
    r.message,
  );
  assert.match(r.message, /npm rebuild virtiofs-daemon/);
  assert.ok(r.cause, 'the loader error is the cause');
});

test('install script: with no prebuild that loads it builds from source, and says what that needs when it cannot', (t) => {
  const dir = packageCopy(t, { prebuilds: {} });
  // node-gyp that fails the way it does without a toolchain: the script must report it, not hide it.
  const fakeGyp = path.join(dir, 'fake-node-gyp.js');
  fs.writeFileSync(fakeGyp, "console.error('gyp ERR! find Python'); process.exit(1);\n");
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'install.js')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, npm_config_node_gyp: fakeGyp },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`no usable addon for linux-${process.arch}, building it from source`));
  assert.match(r.stderr, /gyp ERR! find Python/);
  assert.match(r.stderr, /apt-get install build-essential python3\), then: npm rebuild virtiofs-daemon/);
});

test('install script: a prebuild that loads is used as it is, nothing is built', (t) => {
  const dir = packageCopy(t, { prebuilds: { [process.arch]: path.join(root, prebuildPath('linux', process.arch)) } });
  const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'install.js')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, npm_config_node_gyp: path.join(dir, 'no-such-node-gyp.js') },
  });
  assert.deepEqual({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' });
  assert.equal(fs.existsSync(path.join(dir, 'build')), false);
});

/** qemu-user, the arm64 libc from Debian's cross packages and Node's arm64 binary, or why not. */
function qemuArm64() {
  const qemu = '/usr/bin/qemu-aarch64-static';
  const sysroot = '/usr/aarch64-linux-gnu';
  const nodeDir = path.join(root, '.cache', 'node', `linux-arm64-${process.versions.node.split('.')[0]}`);
  const node = path.join(nodeDir, 'bin', 'node');
  const missing = [
    [qemu, 'apt-get install qemu-user-static'],
    [path.join(sysroot, 'lib', 'libc.so.6'), 'apt-get install libc6-arm64-cross'],
    [path.join(sysroot, 'lib', 'libstdc++.so.6'), 'apt-get install libstdc++6-arm64-cross'],
    [node, `scripts/get-node.sh arm64 ${process.versions.node.split('.')[0]}`],
  ].filter(([p]) => !fs.existsSync(p));
  if (missing.length) {
    throw new Error(
      `cannot run arm64 code here: missing ${missing.map(([p, fix]) => `${p} (${fix})`).join(', ')}; scripts/setup.sh installs them all`,
    );
  }
  // The arm64 loader named explicitly, not `-L sysroot`: -L makes qemu look up every absolute path
  // in the sysroot first, so the addon's open("/") for its component-by-component walk of the
  // socket's directory would land in the sysroot.
  const lib = path.join(sysroot, 'lib');
  return [qemu, path.join(lib, 'ld-linux-aarch64.so.1'), '--library-path', lib, node];
}

test('the arm64 prebuild loads under qemu-user and its socket primitives work there', (t) => {
  const cmd = qemuArm64();
  const dir = packageCopy(t, { prebuilds: { arm64: path.join(root, prebuildPath('linux', 'arm64')) } });
  const sockDir = tempDir(t, 'vfsd-qemu-');
  // spawn() is not tried: qemu-user refuses clone(CLONE_PIDFD) (EINVAL), so it needs a real arm64 machine.
  const r = runIn(
    dir,
    `const native = require('./dist/process/native.js');
     const fs = require('node:fs');
     const s = native.listenUnix(${JSON.stringify(path.join(sockDir, 'a.sock'))});
     const isSocket = fs.statSync(s.path).isSocket();
     const removed = native.unlinkSocket(s);
     native.closeFd(s.fd);
     console.log(JSON.stringify({ arch: process.arch, isSocket, removed, gone: !fs.existsSync(s.path) }));`,
    cmd,
  );
  assert.deepEqual(r, { arch: 'arm64', isSocket: true, removed: true, gone: true });
});

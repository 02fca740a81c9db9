#!/usr/bin/env node
'use strict';
/**
 * Builds the prebuilt addons the npm tarball ships: `npm run build:prebuilds` (one command, both arches).
 *
 *   prebuilds/linux-x64/node.napi.node          x86-64, the machine's g++
 *   prebuilds/linux-arm64/node.napi.armv8.node  arm64, Debian's g++-aarch64-linux-gnu
 *
 * The names are prebuildify's (runtime `node`, tag `napi`, `armv8` on arm64): the ones node-gyp-build
 * and @electron/rebuild look for, so Electron apps use them as they are instead of rebuilding.
 * Each build runs node-gyp in a scratch copy of binding.gyp and native/, so the project's own
 * build/ (a source build, which the loader prefers) is left alone. Every output is checked with
 * `file`: node-gyp's `--arch` alone would quietly build x86-64 with the host compiler.
 * Run it on the oldest toolchain you have; test/prebuilds.test.js fails when a prebuild needs a glibc
 * or libstdc++ newer than Node's own binaries do.
 */
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** The files the addon is built from; their digest is recorded beside the prebuilds. */
const SOURCES = [
  'binding.gyp',
  ...fs
    .readdirSync(path.join(root, 'native'))
    .sort()
    .map((n) => `native/${n}`),
];

/** sha256 over the sources' names and contents: test/prebuilds.test.js compares it with today's. */
function sourcesDigest() {
  const h = crypto.createHash('sha256');
  for (const f of SOURCES)
    h.update(`${f}\0`)
      .update(fs.readFileSync(path.join(root, f)))
      .update('\0');
  return h.digest('hex');
}

/** What each prebuild is built with, and what `file` must say about it. */
const TARGETS = [
  { arch: 'x64', file: 'node.napi.node', cc: 'gcc', cxx: 'g++', strip: 'strip', machine: /x86-64/ },
  {
    arch: 'arm64',
    file: 'node.napi.armv8.node',
    cc: 'aarch64-linux-gnu-gcc',
    cxx: 'aarch64-linux-gnu-g++',
    strip: 'aarch64-linux-gnu-strip',
    machine: /ARM aarch64/,
    apt: 'g++-aarch64-linux-gnu',
  },
];

/** node-gyp as npm runs it for install scripts, else the one on PATH. */
function nodeGyp() {
  const js = process.env.npm_config_node_gyp;
  return js ? [process.execPath, js] : ['node-gyp'];
}

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function build(target) {
  for (const tool of [target.cc, target.cxx, target.strip]) {
    if (!have(tool)) {
      throw new Error(
        `prebuild ${target.arch}: ${tool} is missing (apt-get install ${target.apt ?? 'build-essential'})`,
      );
    }
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `vfsd-prebuild-${target.arch}-`));
  try {
    fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(scratch, 'binding.gyp'));
    fs.cpSync(path.join(root, 'native'), path.join(scratch, 'native'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'));
    const [cmd, ...pre] = nodeGyp();
    const env = { ...process.env, CC: target.cc, CXX: target.cxx, LINK: target.cxx };
    console.log(`prebuild ${target.arch}: ${target.cxx}`);
    execFileSync(cmd, [...pre, 'rebuild', `--arch=${target.arch}`, '--loglevel=warn'], {
      cwd: scratch,
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const built = path.join(scratch, 'build', 'Release', 'virtiofs_daemon.node');
    execFileSync(target.strip, ['--strip-unneeded', built]);
    const what = execFileSync('file', ['-b', built], { encoding: 'utf8' }).trim();
    if (!target.machine.test(what)) throw new Error(`prebuild ${target.arch}: node-gyp built the wrong thing: ${what}`);
    const dest = path.join(root, 'prebuilds', `linux-${target.arch}`, target.file);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(built, dest);
    console.log(`prebuild ${target.arch}: ${path.relative(root, dest)}: ${what}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

module.exports = { TARGETS, sourcesDigest };

if (require.main === module) {
  try {
    for (const target of TARGETS) build(target);
    fs.writeFileSync(path.join(root, 'prebuilds', 'SOURCES.sha256'), `${sourcesDigest()}\n`);
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}

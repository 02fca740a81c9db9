#!/usr/bin/env node
'use strict';
/**
 * npm's install step: use the addon that is already here when it loads on this machine (the
 * prebuild shipped in the tarball, or an earlier source build), and compile from source with
 * node-gyp only when none does (another arch, musl, a libc older than glibc 2.28, ...). So an
 * install on linux x64/arm64 with glibc needs no compiler, make or python3.
 */
const { spawnSync } = require('node:child_process');
const { PACKAGE_ROOT, addonSearchList } = require('./addon-path.js');

const failures = [];
for (const file of addonSearchList()) {
  try {
    require(file);
    process.exit(0);
  } catch (err) {
    failures.push(`  ${file}: ${err.code === 'MODULE_NOT_FOUND' ? 'missing' : err.message.split('\n')[0]}`);
  }
}

console.error(`virtiofs-daemon: no usable addon for ${process.platform}-${process.arch}, building it from source:`);
console.error(failures.join('\n'));
// npm hands its own node-gyp to install scripts; otherwise the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const r = spawnSync(cmd, args, { cwd: PACKAGE_ROOT, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(
    'virtiofs-daemon: building the addon failed. It needs a C++ compiler, make and python3 ' +
      '(Debian/Ubuntu: apt-get install build-essential python3), then: npm rebuild virtiofs-daemon',
  );
  process.exit(r.status ?? 1);
}

#!/usr/bin/env node
'use strict';
/**
 * Compiles the C helpers of the tests and benchmarks: every test/helpers/*.c and bench/*.c
 * becomes build/helpers/<name>, with `cc -O2 -Wall` ($CC overrides cc); a `<name>.addon.c` is a
 * tiny Node-API test addon and becomes build/helpers/<name>.node (never part of binding.gyp:
 * users do not build test helpers); a `<name>.preload.c` is a shared object for LD_PRELOAD and
 * becomes build/helpers/<name>.so. An output newer
 * than its source is left alone. A missing source directory is fine; a failed compile
 * exits non-zero.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const sourceDirs = ['test/helpers', 'bench'];
const outDir = path.join(root, 'build', 'helpers');
const cc = process.env.CC || 'cc';
/** node_api.h of the running Node: <prefix>/include/node. */
const nodeInclude = path.join(path.dirname(process.execPath), '..', 'include', 'node');

/** The .c files directly in dir (absolute paths), or none when dir does not exist. */
function cSources(dir) {
  let names;
  try {
    names = fs.readdirSync(path.join(root, dir));
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith('.c'))
    .sort()
    .map((n) => path.join(root, dir, n));
}

/** True when out exists and is at least as new as src. */
function upToDate(src, out) {
  try {
    return fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs;
  } catch (err) {
    if (err.code === 'ENOENT') return false;
    throw err;
  }
}

function main() {
  const sources = sourceDirs.flatMap(cSources);
  const seen = new Map();
  for (const src of sources) {
    const name = src.endsWith('.addon.c')
      ? `${path.basename(src, '.addon.c')}.node`
      : src.endsWith('.preload.c')
        ? `${path.basename(src, '.preload.c')}.so`
        : path.basename(src, '.c');
    if (seen.has(name)) {
      throw new Error(`two helpers would both build ${name}: ${seen.get(name)} and ${src}`);
    }
    seen.set(name, src);
  }
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, src] of seen) {
    const out = path.join(outDir, name);
    if (upToDate(src, out)) continue;
    const args = name.endsWith('.node')
      ? ['-O2', '-Wall', '-shared', '-fPIC', `-I${nodeInclude}`, '-o', out, src]
      : name.endsWith('.so')
        ? ['-O2', '-Wall', '-shared', '-fPIC', '-o', out, src, '-ldl']
        : ['-O2', '-Wall', '-o', out, src];
    console.log(`${cc} ${args.join(' ')}`);
    try {
      execFileSync(cc, args, { stdio: 'inherit' });
    } catch (err) {
      fs.rmSync(out, { force: true });
      console.error(`build-helpers: compiling ${path.relative(root, src)} failed (${err.message})`);
      process.exit(1);
    }
  }
}

main();

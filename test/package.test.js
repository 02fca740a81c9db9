'use strict';
/**
 * The package as its users get it: `npm pack`'s tarball, installed into a fresh directory
 *   (a) normally, (b) with no C/C++ compiler, make or python3 on PATH, (c) with --ignore-scripts,
 * and each time used through its public API: a real virtiofsd started and stopped from CommonJS
 * and from ESM, and a TypeScript consumer type-checked with moduleResolution node16 and bundler.
 * The installs use whatever node runs this file (CI runs it under every Node major) and npm's
 * local cache (--prefer-offline), so they take seconds.
 */
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { virtiofsdPath } = require('./helpers/daemons.js');
const { TARGETS } = require('../scripts/prebuild.js');
const { prebuildPath } = require('../scripts/addon-path.js');
const { tempDir } = require('./helpers/util.js');

const root = path.join(__dirname, '..');
const nodeDir = path.dirname(process.execPath);
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** Our environment without npm's script variables (npm_config_*, npm_lifecycle_*): a user's shell. */
function userEnv(PATH) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, PATH };
}
const normalPath = `${nodeDir}:${process.env.PATH}`;

/** What a machine without a toolchain lacks. */
const TOOLCHAIN =
  /^(cc|c\+\+|c89|c99|cpp|gcc|g\+\+|clang|clang\+\+|make|gmake|python[\d.]*|(\w+-)+(gcc|g\+\+|cc|c\+\+|cpp)(-\d+)?|(gcc|g\+\+|cpp)-\d+)$/;

/** A directory of symlinks to every program on PATH except the toolchain's: PATH of a machine without one. */
function pathWithoutToolchain(dir) {
  fs.mkdirSync(dir);
  for (const d of normalPath.split(':')) {
    let names;
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      if (TOOLCHAIN.test(name) || fs.existsSync(path.join(dir, name))) continue;
      try {
        fs.accessSync(path.join(d, name), fs.constants.X_OK);
        if (fs.statSync(path.join(d, name)).isFile()) fs.symlinkSync(path.join(d, name), path.join(dir, name));
      } catch {
        // not an executable file
      }
    }
  }
  return dir;
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 180000, ...opts });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

let work;
let tarball;
before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vfsd-package-'));
  // npm pack runs `prepare` (tsc), as a release would.
  const out = run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, env: userEnv(normalPath) });
  tarball = path.join(work, out.stdout.trim().split('\n').pop());
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('the tarball: both prebuilds, LICENSE, CHANGELOG, types, sources for the maps, no test helpers', () => {
  const files = new Set(
    execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, '')),
  );
  for (const t of TARGETS)
    assert.ok(files.has(prebuildPath('linux', t.arch)), `${prebuildPath('linux', t.arch)} in the tarball`);
  for (const f of [
    'LICENSE',
    'CHANGELOG.md',
    'README.md',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/process/native.d.ts',
    'scripts/install.js',
    'scripts/addon-path.js',
    'binding.gyp',
  ]) {
    assert.ok(files.has(f), `${f} in the tarball`);
  }
  assert.deepEqual(
    [...files].filter((f) => /^(test|bench|\.ci|build)\//.test(f)),
    [],
    'no tests, benchmarks or build output',
  );
  // Every source map points at a file the tarball has.
  const extracted = path.join(work, 'extracted');
  fs.mkdirSync(extracted);
  execFileSync('tar', ['-xzf', tarball, '-C', extracted]);
  const dangling = [];
  for (const f of files) {
    if (!f.endsWith('.map')) continue;
    const map = JSON.parse(fs.readFileSync(path.join(extracted, 'package', f), 'utf8'));
    for (const src of map.sources) {
      const rel = path.normalize(path.join(path.dirname(f), src));
      if (!files.has(rel)) dangling.push(`${f} -> ${rel}`);
    }
  }
  assert.deepEqual(dangling, []);
  const license = fs.readFileSync(path.join(extracted, 'package', 'LICENSE'), 'utf8');
  assert.match(license, /Apache License\s+Version 2\.0, January 2004/);
});

const CJS = `
const fs = require('node:fs');
const { Virtiofsd, VirtiofsDaemonError } = require('virtiofs-daemon');
const native = require('virtiofs-daemon/native');
const [bin, sock, share] = process.argv.slice(2);
(async () => {
  const d = new Virtiofsd({ path: bin, socketPath: sock, sourcePath: share });
  let quit;
  const quitted = new Promise((r) => (quit = r));
  const pid = await d.start(quit);
  const alive = fs.existsSync('/proc/' + pid);
  await d.stop();
  const exit = await quitted;
  const addon = require.cache[Object.keys(require.cache).find((k) => k.endsWith('.node'))]?.filename;
  console.log('RESULT ' + JSON.stringify({ pid: pid > 0, alive, requested: exit.requested, socketGone: !fs.existsSync(sock),
    errors: typeof VirtiofsDaemonError, spawn: typeof native.spawn, addon }));
})();
`;

const ESM = `
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Virtiofsd, VirtiofsDaemonError } from 'virtiofs-daemon';
import { spawn } from 'virtiofs-daemon/native';
const [bin, sock, share] = process.argv.slice(2);
const d = new Virtiofsd({ path: bin, socketPath: sock, sourcePath: share });
let quit;
const quitted = new Promise((r) => (quit = r));
const pid = await d.start(quit);
const alive = fs.existsSync('/proc/' + pid);
await d.stop();
const exit = await quitted;
const require = createRequire(import.meta.url);
const addon = require.cache[Object.keys(require.cache).find((k) => k.endsWith('.node'))]?.filename;
console.log('RESULT ' + JSON.stringify({ pid: pid > 0, alive, requested: exit.requested, socketGone: !fs.existsSync(sock),
  errors: typeof VirtiofsDaemonError, spawn: typeof spawn, addon }));
`;

const TS = `
import { Virtiofsd, VirtiofsDaemonError, type VirtiofsdOptions, type DaemonExit } from 'virtiofs-daemon';
import { spawn, type Child } from 'virtiofs-daemon/native';
const options: VirtiofsdOptions = { socketPath: '/tmp/x.sock', sourcePath: '/tmp' };
const daemon = new Virtiofsd(options);
const started: Promise<number> = daemon.start((exit: DaemonExit) => console.log(exit.code));
const child: (o: Parameters<typeof spawn>[0]) => Child = spawn;
const code: string = new VirtiofsDaemonError('ERR_X', 'x').code;
// @ts-expect-error the types are real: an unknown option is an error, not any
new Virtiofsd({ socketPath: '/tmp/x.sock', sourcePath: '/tmp', noSuchOption: true });
export { started, child, code };
`;

const TSCONFIG = {
  node16: { module: 'node16', moduleResolution: 'node16' },
  bundler: { module: 'esnext', moduleResolution: 'bundler' },
};

const MODES = [
  { name: 'normally', flags: [] },
  { name: 'with no compiler, make or python3 on PATH', flags: [], noToolchain: true },
  { name: 'with --ignore-scripts', flags: ['--ignore-scripts'] },
];

for (const mode of MODES) {
  describe(`installed from the tarball ${mode.name}`, () => {
    let app;
    let env;
    before(() => {
      app = fs.mkdtempSync(path.join(work, 'app-'));
      const PATH = mode.noToolchain ? pathWithoutToolchain(path.join(app, '.bin-no-toolchain')) : normalPath;
      env = userEnv(PATH);
      if (mode.noToolchain) {
        const found = spawnSync('sh', ['-c', 'command -v cc c++ g++ gcc make python3 python'], {
          env,
          encoding: 'utf8',
        }).stdout;
        assert.equal(found, '', 'the toolchain is hidden');
      }
      fs.writeFileSync(
        path.join(app, 'package.json'),
        JSON.stringify({ name: 'app', version: '1.0.0', private: true }),
      );
      const t0 = process.hrtime.bigint();
      run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...mode.flags, tarball], { cwd: app, env });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // A figure for the README, not an assertion.
      console.log(`# npm install of the tarball ${mode.name} (node ${process.version}): ${(ms / 1000).toFixed(1)} s`);
    });

    test('nothing was compiled: no build/ in the installed package', () => {
      assert.equal(fs.existsSync(path.join(app, 'node_modules', 'virtiofs-daemon', 'build')), false);
    });

    for (const [kind, file, source] of [
      ['CommonJS', 'consumer.cjs', CJS],
      ['ESM', 'consumer.mjs', ESM],
    ]) {
      test(`${kind}: starts and stops a real virtiofsd through the public API, with the shipped prebuild`, (t) => {
        const dir = tempDir(t, 'vfsd-consumer-');
        fs.writeFileSync(path.join(app, file), source);
        const r = run(process.execPath, [file, virtiofsdPath('rust'), path.join(dir, 'vfs.sock'), dir], {
          cwd: app,
          env,
        });
        const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
        assert.ok(line, `no result line in:\n${r.stdout}\n${r.stderr}`);
        assert.deepEqual(JSON.parse(line.slice(7)), {
          pid: true,
          alive: true,
          requested: true,
          socketGone: true,
          errors: 'function',
          spawn: 'function',
          addon: path.join(
            fs.realpathSync(app),
            'node_modules',
            'virtiofs-daemon',
            prebuildPath('linux', process.arch),
          ),
        });
      });
    }

    for (const [resolution, compilerOptions] of Object.entries(TSCONFIG)) {
      test(`TypeScript (moduleResolution ${resolution}) type-checks a consumer against the shipped types`, () => {
        const dir = path.join(app, `ts-${resolution}`);
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'index.ts'), TS);
        const tsconfig = {
          compilerOptions: {
            ...compilerOptions,
            target: 'es2022',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: ['node'],
            typeRoots: [path.join(root, 'node_modules', '@types')],
          },
          files: ['index.ts'],
        };
        fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
        run(process.execPath, [tsc, '-p', dir], { cwd: dir, env });
      });
    }
  });
}

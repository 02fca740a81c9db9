'use strict';
/**
 * buildNydusdArgs (src/nydusd.ts) as golden lists, and the argv the running process sees.
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-argv.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');

const { buildNydusdArgs } = require('../dist/index.js');
const { DAEMON, assertNothingLeft, cmdline, test, world } = require('./helpers/nydusd.js');

describe('argv', () => {
  const base = { sockPath: '/run/kata/vhost.sock', apiSockPath: '/run/kata/api.sock' };

  test('buildNydusdArgs golden: info', () => {
    assert.deepEqual(buildNydusdArgs({ ...base, debug: false, extraArgs: [] }), [
      'virtiofs',
      '--log-level',
      'info',
      '--apisock',
      '/run/kata/api.sock',
      '--sock',
      '/run/kata/vhost.sock',
    ]);
  });

  test('buildNydusdArgs golden: debug, extraArgs last and as they are, no --hybrid-mode', () => {
    const extra = ['--rlimit-nofile', '0', '--log-file=/tmp/x y'];
    const args = buildNydusdArgs({ ...base, debug: true, extraArgs: extra });
    assert.deepEqual(args, [
      'virtiofs',
      '--log-level',
      'debug',
      '--apisock',
      '/run/kata/api.sock',
      '--sock',
      '/run/kata/vhost.sock',
      ...extra,
    ]);
    assert.ok(!args.includes('--hybrid-mode'));
    assert.deepEqual(extra, ['--rlimit-nofile', '0', '--log-file=/tmp/x y'], 'extraArgs not modified');
  });

  for (const debug of [false, true]) {
    test(`the running process sees exactly that argv (debug: ${debug}, extraArgs)`, async (t) => {
      const w = world(t);
      const extraArgs = ['--rlimit-nofile', '0'];
      const d = w.make({ debug, extraArgs });
      const pid = await d.start(w.onQuit);
      const want = buildNydusdArgs({ sockPath: w.sockPath, apiSockPath: w.apiSockPath, debug, extraArgs });
      assert.equal(want[2], debug ? 'debug' : 'info');
      const seen = cmdline(pid);
      assert.ok(seen, `/proc/${pid}/cmdline readable`);
      // A script's interpreter comes first (node <script> args...); the binary just precedes the args.
      assert.deepEqual(seen.slice(-want.length), want, `cmdline ${JSON.stringify(seen)}`);
      assert.equal(seen[seen.length - want.length - 1], DAEMON, `cmdline ${JSON.stringify(seen)}`);
      const started = w.records.find((r) => r.msg === 'nydusd started');
      assert.ok(started, 'a "nydusd started" record');
      assert.deepEqual(started.argv, [DAEMON, ...want]);
      assert.equal(started.subsystem, 'nydusd');
      await d.stop();
      await assertNothingLeft(pid, w.dir);
    });
  }
});

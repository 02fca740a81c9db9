'use strict';
/**
 * Nydusd's failed starts (src/nydusd.ts): an early exit, never RUNNING, the share mount failing
 * or timing out, the start deadline and the probe timeout (a fake nydusd in Node), the daemon's
 * output in the log: each stops the process and removes the sockets.
 *
 * Against a real nydusd: see test/helpers/nydusd.js.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/nydusd-start-failures.test.js
 */
const { describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { buildNydusdArgs, DaemonStartError, NydusApiError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { rejection, script, sleep } = require('./helpers/util.js');
const { DAEMON, REAL, assertNothingLeft, assertSocketsGone, standinTest, test, world } = require('./helpers/nydusd.js');

// ---------------------------------------------------------------------------------------------
// Start failures

describe('start failures stop the process and remove the sockets', () => {
  standinTest(
    'a nydusd that exits early (EXIT_EARLY=3) -> ERR_DAEMON_EXITED at once, with its last lines',
    'needs NYDUSD_STANDIN_EXIT_EARLY',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_EXIT_EARLY: '3' } });
      const d = w.make({ startTimeoutMs: 10000 });
      const t0 = Date.now();
      const err = await rejection(d.start(w.onQuit), 'start');
      const ms = Date.now() - t0;
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_EXITED');
      assert.deepEqual(err.exit, { code: 3, signal: null });
      assert.ok(
        err.lastLines.some((l) => l.includes('NYDUSD_STANDIN_EXIT_EARLY=3')),
        JSON.stringify(err.lastLines),
      );
      assert.ok(
        err.lastLines.some((l) => l.startsWith('Error: ')),
        JSON.stringify(err.lastLines),
      );
      assert.ok(err.message.includes('NYDUSD_STANDIN_EXIT_EARLY=3'), 'the message carries the last lines');
      assert.deepEqual(err.argv, [
        DAEMON,
        ...buildNydusdArgs({ sockPath: w.sockPath, apiSockPath: w.apiSockPath, debug: false, extraArgs: [] }),
      ]);
      assert.ok(ms < 3000, `rejected after ${ms} ms; should be well before the 10 s start timeout`);
      // The stand-in leaves its vhost-user socket behind; start removed it.
      assertSocketsGone(w);
      assert.equal(d.pid, 0);
      await assertNothingLeft(0, w.dir);
      await sleep(200);
      assert.deepEqual(w.quits, [], 'onQuit is not called for a start that failed');
      // The error lines were logged as nydusd's, at their level.
      assert.ok(
        w.records.some((r) => r.subsystem === 'nydusd' && r.level === 50 && /EXIT_EARLY/.test(r.msg)),
        JSON.stringify(w.records.map((r) => [r.level, r.msg])),
      );
      t.diagnostic(`rejected after ${ms} ms`);
      await d.stop();
    },
  );

  standinTest(
    'a nydusd that never becomes RUNNING -> ERR_DAEMON_START_TIMEOUT, stopped, sockets removed',
    'needs NYDUSD_STANDIN_NEVER_RUNNING',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_NEVER_RUNNING: '1' } });
      const startTimeoutMs = 1500;
      const stopTimeoutMs = 5000;
      const d = w.make({ startTimeoutMs, stopTimeoutMs });
      let pid = 0;
      const watcher = setInterval(() => (pid ||= d.pid), 5);
      const t0 = Date.now();
      const err = await rejection(d.start(w.onQuit), 'start');
      const ms = Date.now() - t0;
      clearInterval(watcher);
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
      assert.equal(err.exit, null);
      assert.match(err.message, /INIT/, 'the last state seen is reported');
      assert.ok(ms < startTimeoutMs + stopTimeoutMs + 2000, `rejected after ${ms} ms`);
      assert.ok(pid > 0, 'a process was started');
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      await sleep(100);
      assert.deepEqual(w.quits, []);
      t.diagnostic(`rejected after ${ms} ms (deadline ${startTimeoutMs} ms)`);
    },
  );

  standinTest(
    'the share cannot be mounted (source removed meanwhile) -> ERR_DAEMON_START with the API error; stopped',
    'needs NYDUSD_STANDIN_INIT_MS',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_INIT_MS: '600' } });
      const d = w.make();
      const starting = d.start(w.onQuit);
      const pid = await h.waitFor(() => d.pid, { timeoutMs: 5000, what: 'the spawn' });
      fs.rmSync(w.share, { recursive: true });
      const err = await rejection(starting, 'start');
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START');
      assert.ok(err.cause instanceof NydusApiError, `cause: ${err.cause && err.cause.stack}`);
      assert.equal(err.cause.status, 500);
      assert.match(err.message, /\/containers/);
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.deepEqual(w.quits, []);
      if (!REAL) {
        const reqs = w.requests();
        assert.equal(reqs.length, 1);
        assert.equal(reqs[0].status, 500);
      }
    },
  );

  standinTest(
    'the share mount times out (apiTimeoutMs) -> ERR_DAEMON_START, stopped, sockets removed',
    'needs NYDUSD_STANDIN_SLOW_MS',
    async (t) => {
      const w = world(t, { env: { NYDUSD_STANDIN_SLOW_MS: '500' } });
      const d = w.make({ probeTimeoutMs: 3000, apiTimeoutMs: 200 });
      let pid = 0;
      const watcher = setInterval(() => (pid ||= d.pid), 5);
      const err = await rejection(d.start(w.onQuit), 'start');
      clearInterval(watcher);
      assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
      assert.equal(err.code, 'ERR_DAEMON_START');
      assert.ok(err.cause instanceof NydusApiError, `cause: ${err.cause && err.cause.stack}`);
      assert.equal(err.cause.code, 'ERR_NYDUS_API_TIMEOUT');
      assert.equal(d.pid, 0);
      assertSocketsGone(w);
      await assertNothingLeft(pid, w.dir);
      assert.deepEqual(w.quits, []);
    },
  );

  /**
   * A fake nydusd (Node, HTTP on --apisock, a plain listener on --sock) whose GET /api/v1/daemon
   * answers INIT until the wall-clock time $FAKE_RUNNING_AT, then RUNNING; with FAKE_MODE=hang
   * its API accepts connections and never answers. Mounts answer 204 after $FAKE_MOUNT_DELAY ms.
   * SIGTERM exits 0. $FAKE_LOG gets a line per probe and one for SIGTERM.
   */
  function fakeNydusd(dir) {
    const file = path.join(dir, 'fake-nydusd.js');
    fs.writeFileSync(
      file,
      `#!${process.execPath}
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const argv = process.argv.slice(2);
const arg = (f) => argv[argv.indexOf(f) + 1];
const api = arg('--apisock');
const sock = arg('--sock');
const runningAt = Number(process.env.FAKE_RUNNING_AT || 0);
const note = (what) => { if (process.env.FAKE_LOG) fs.appendFileSync(process.env.FAKE_LOG, what + ' ' + Date.now() + '\\n'); };
const unlink = (p) => { try { fs.unlinkSync(p); } catch {} };
unlink(sock);
unlink(api);
net.createServer((c) => c.resume()).listen(sock);
const server = process.env.FAKE_MODE === 'hang'
  ? net.createServer((c) => c.resume())
  : http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET' && req.url === '/api/v1/daemon') {
          note('GET');
          const state = Date.now() >= runningAt ? 'RUNNING' : 'INIT';
          const body = JSON.stringify({ version: {}, id: null, supervisor: null, state, backend_collection: {} });
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
          res.end(body);
        } else if (req.url.startsWith('/api/v1/mount')) {
          setTimeout(() => {
            res.writeHead(204);
            res.end();
          }, Number(process.env.FAKE_MOUNT_DELAY || 0));
        } else {
          res.writeHead(404);
          res.end();
        }
      });
    });
server.listen(api, () => console.error('fake nydusd: API at ' + api));
process.on('SIGTERM', () => { note('SIGTERM'); unlink(api); unlink(sock); process.exit(0); });
`,
    );
    fs.chmodSync(file, 0o755);
    return file;
  }

  test('the start deadline is honoured: no ERR_DAEMON_START_TIMEOUT before startTimeoutMs has passed', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    const startTimeoutMs = 1500;
    w.env.FAKE_RUNNING_AT = String(Date.now() + 3600e3); // INIT for an hour
    w.env.FAKE_LOG = path.join(w.dir, 'fake.log');
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs });
    const t0 = Date.now();
    const err = await rejection(d.start(w.onQuit), 'start');
    const ms = Date.now() - t0;
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
    const log = fs
      .readFileSync(w.env.FAKE_LOG, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));
    // The deadline starts once the process is spawned, right after the "nydusd started" record.
    const started = w.records.find((r) => r.msg === 'nydusd started');
    assert.ok(started, 'a "nydusd started" record');
    const base = started.time;
    const probes = log.filter(([what]) => what === 'GET').map(([, at]) => Number(at) - base);
    const termAt = Number((log.find(([what]) => what === 'SIGTERM') || [])[1]) - base;
    t.diagnostic(
      `after the spawn: probes at +${probes.join(', +')} ms; SIGTERM (gave up) at +${termAt} ms; ` +
        `start() rejected ${ms} ms after it was called`,
    );
    assert.ok(probes.length > 0, 'the API was probed');
    assert.ok(
      termAt >= startTimeoutMs - 10,
      `start gave up (SIGTERM) ${termAt} ms after the spawn, before its ${startTimeoutMs} ms deadline; ` +
        `last probe at +${probes.at(-1)} ms: a daemon turning RUNNING in the last ${startTimeoutMs - probes.at(-1)} ms is refused`,
    );
    assertSocketsGone(w);
    assert.deepEqual(w.quits, []);
  });

  test('startTimeoutMs also bounds the share mount (as NydusdOptions documents)', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    const startTimeoutMs = 1500;
    w.env.FAKE_MOUNT_DELAY = '4000';
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs });
    const t0 = Date.now();
    const [r] = await Promise.allSettled([d.start(w.onQuit)]);
    const ms = Date.now() - t0;
    t.diagnostic(`start ${r.status} after ${ms} ms (${r.status === 'rejected' ? r.reason.code : `pid ${r.value}`})`);
    // "Overall deadline for the API to answer RUNNING and the share to be mounted."
    assert.ok(
      ms < startTimeoutMs + 1000,
      `start() settled (${r.status}) only after ${ms} ms with startTimeoutMs ${startTimeoutMs}: ` +
        'the /containers mount is bounded by apiTimeoutMs (30 s by default), not by the start deadline',
    );
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof DaemonStartError, `DaemonStartError expected: ${r.reason && r.reason.stack}`);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
  });

  test('a probe that never gets an answer is bounded by probeTimeoutMs; the whole by the deadline', async (t) => {
    const w = world(t);
    const fake = fakeNydusd(w.dir);
    w.env.FAKE_MODE = 'hang';
    const startTimeoutMs = 1500;
    const probeTimeoutMs = 300;
    const d = w.make({ path: fake, version: '2.2.3', startTimeoutMs, probeTimeoutMs });
    let pid = 0;
    const watcher = setInterval(() => (pid ||= d.pid), 5);
    const t0 = Date.now();
    const err = await rejection(d.start(w.onQuit), 'start');
    const ms = Date.now() - t0;
    clearInterval(watcher);
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_START_TIMEOUT');
    assert.match(err.message, new RegExp(`${probeTimeoutMs} ms`), 'the last probe error (its timeout) is reported');
    assert.ok(ms < startTimeoutMs + probeTimeoutMs + 2000, `rejected after ${ms} ms`);
    assert.equal(d.pid, 0);
    assertSocketsGone(w);
    await assertNothingLeft(pid, w.dir);
    assert.deepEqual(w.quits, []);
    t.diagnostic(`rejected after ${ms} ms`);
  });

  test("the daemon's stdout and stderr both reach the log and lastLines", async (t) => {
    const w = world(t);
    const fake = script(
      path.join(w.dir, 'fake-nydusd'),
      `echo "out: hello on stdout"\necho "[2024-01-01 00:00:00.000000 +00:00] ERROR err: hello on stderr" >&2\nexit 7`,
    );
    const d = w.make({ path: fake, version: '2.2.3' });
    const err = await rejection(d.start(w.onQuit), 'start');
    assert.ok(err instanceof DaemonStartError, `DaemonStartError expected: ${err && err.stack}`);
    assert.equal(err.code, 'ERR_DAEMON_EXITED');
    assert.deepEqual(err.exit, { code: 7, signal: null });
    assert.ok(
      err.lastLines.some((l) => l.includes('hello on stdout')),
      JSON.stringify(err.lastLines),
    );
    assert.ok(
      err.lastLines.some((l) => l.includes('hello on stderr')),
      JSON.stringify(err.lastLines),
    );
    const msgs = w.records.filter((r) => r.subsystem === 'nydusd').map((r) => r.msg);
    assert.ok(
      msgs.some((m) => m.includes('hello on stdout')),
      JSON.stringify(msgs),
    );
    assert.ok(
      msgs.some((m) => m.includes('hello on stderr')),
      JSON.stringify(msgs),
    );
    assert.deepEqual(w.quits, []);
    assertSocketsGone(w);
  });
});

'use strict';
/**
 * Virtiofsd (src/virtiofsd.ts) against the real daemons, in both dialects (the legacy C
 * virtiofsd of QEMU 7.2 and the Rust virtiofsd): start, serve (a vhost-user front-end,
 * test/helpers/vhost-user.js), stop, quit and restart; /proc proves nothing is left behind.
 *
 * The daemons come from $VIRTIOFSD_LEGACY / $VIRTIOFSD_RUST or well-known paths
 * (test/helpers/daemons.js). A missing daemon FAILS its tests with how to get it.
 *
 * Build first: npm run build:ts
 * Run: node --test --test-concurrency=1 test/virtiofsd-lifecycle.test.js
 */
const { after, describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Virtiofsd, detectDialect, DaemonRunningError, DaemonStartError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const { captureLogger, isReaped, isRunning, isSocket, rejection, sleep, tempDir } = require('./helpers/util.js');
const { FACTS, handshake, printTimings, realSetup, timed, track } = require('./helpers/virtiofsd.js');

for (const dialect of h.DIALECTS) {
  const facts = FACTS[dialect];
  const bin = () => h.virtiofsdPath(dialect);

  describe(`virtiofsd ${dialect}`, () => {
    /** A temp dir with a source dir and a socket path; a daemon on them, cleaned up after t. */
    const setup = (t, extra) => realSetup(t, dialect, extra);

    test(`detectDialect says '${dialect}'`, async () => {
      assert.equal(await detectDialect(bin()), dialect);
      assert.equal(await detectDialect(bin()), dialect); // cached, same answer
    });

    test(
      'start → vhost-user handshake → stop: socket gone, group empty, no zombie, fds back to baseline, onQuit once',
      timed(`${dialect} start/handshake/stop`, async (t) => {
        const binary = bin();
        const dir = tempDir(t);
        const socketPath = path.join(dir, 'v.sock');
        const { logger } = captureLogger();
        // Warm-up: everything opened lazily (addon, pino, net) is open from now on.
        {
          const w = new Virtiofsd({ path: binary, socketPath, sourcePath: dir, logger });
          track(t, w);
          await w.start();
          const { client } = await handshake(socketPath);
          await w.stop();
          await client.closed;
        }
        await sleep(50);
        const baseline = h.fdCount();
        const baseTable = h.fdTable();

        const s = setup(t);
        const pid = await s.start();
        assert.ok(Number.isInteger(pid) && pid > 0, `pid ${pid}`);
        assert.equal(s.d.pid, pid);
        assert.ok(isSocket(s.socketPath), 'socket file exists while running');
        assert.equal(h.procStat(pid)?.pgrp, pid, 'the daemon leads a process group of its own');
        assert.equal(h.procStat(pid)?.ppid, process.pid, 'the daemon is our child');

        const { client, features } = await handshake(s.socketPath);
        assert.equal(features, facts.features, `GET_FEATURES 0x${features.toString(16)}`);
        const group = h.liveGroupMembers(pid);
        t.diagnostic(`${dialect}: group while serving: ${group.map((p) => `${p.pid}(${p.comm})`).join(' ')}`);

        await s.d.stop();
        // The moment stop() resolves:
        assert.equal(fs.existsSync(s.socketPath), false, 'socket file removed');
        assert.deepEqual(h.liveGroupMembers(pid), [], 'no live process of the group');
        assert.deepEqual(h.zombieChildren(), [], 'no zombie child of ours');
        assert.equal(s.d.pid, 0);
        assert.equal(s.quits.length, 1, JSON.stringify(s.quits));
        assert.deepEqual(s.quits[0].exit, { code: null, signal: 'SIGKILL', requested: true, known: true });
        assert.equal(s.quits[0].socketExisted, false, 'socket removed before onQuit');
        assert.deepEqual(s.quits[0].groupAtQuit, [], 'group empty when onQuit runs');
        await client.closed;
        await sleep(20);
        assert.equal(
          h.fdCount(),
          baseline,
          `fds: before ${JSON.stringify(baseTable)} after ${JSON.stringify(h.fdTable())}`,
        );
        // stop() again: a no-op.
        await s.d.stop();
        assert.equal(s.quits.length, 1);
      }),
    );

    test(
      'the daemon exits by itself when the front-end disconnects: onQuit {code 0, requested false}',
      timed(`${dialect} disconnect`, async (t) => {
        const s = setup(t);
        const pid = await s.start();
        const { client } = await handshake(s.socketPath);
        client.close();
        await h.waitFor(() => s.quits.length > 0, { timeoutMs: 5000, what: 'onQuit after disconnect' });
        assert.deepEqual(s.quits[0].exit, { code: 0, signal: null, requested: false, known: true });
        assert.equal(s.quits[0].socketExisted, false, 'socket removed before onQuit');
        assert.deepEqual(s.quits[0].groupAtQuit, []);
        assert.equal(fs.existsSync(s.socketPath), false);
        assert.equal(s.d.pid, 0);
        assert.deepEqual(h.liveGroupMembers(pid), []);
        assert.deepEqual(h.zombieChildren(), []);
        await s.d.stop(); // a no-op that resolves
        await sleep(20);
        assert.equal(s.quits.length, 1);
        const quitRec = s.records.find((r) => r.msg === 'virtiofsd quits');
        assert.ok(quitRec, 'the quit is logged');
        assert.equal(quitRec.level, 40, 'an unrequested quit is a warning');
      }),
    );

    test(
      'external SIGKILL: onQuit exactly once {null, SIGKILL, requested false}; nothing left',
      timed(`${dialect} external SIGKILL`, async (t) => {
        const s = setup(t);
        const pid = await s.start();
        // Serving a front-end, so both dialects have their sandbox child.
        const { client } = await handshake(s.socketPath);
        const groupBefore = h.liveGroupMembers(pid);
        assert.ok(groupBefore.length >= 2, `expected a sandbox child: ${JSON.stringify(groupBefore)}`);
        process.kill(pid, 'SIGKILL');
        await h.waitFor(() => s.quits.length > 0, { timeoutMs: 5000, what: 'onQuit after SIGKILL' });
        assert.deepEqual(s.quits[0].exit, { code: null, signal: 'SIGKILL', requested: false, known: true });
        await h.waitFor(() => h.liveGroupMembers(pid).length === 0, { timeoutMs: 3000, what: 'the group to be empty' });
        assert.deepEqual(s.quits[0].groupAtQuit, [], 'group already empty when onQuit ran');
        assert.equal(fs.existsSync(s.socketPath), false);
        assert.equal(s.d.pid, 0);
        assert.deepEqual(h.zombieChildren(), []);
        for (const st of groupBefore) {
          const now = h.procStat(st.pid);
          assert.ok(
            now === null || now.starttime !== st.starttime || now.state === 'Z',
            `${st.pid} still alive: ${JSON.stringify(now)}`,
          );
          if (now && now.starttime === st.starttime) assert.notEqual(now.ppid, process.pid, `zombie ${st.pid} is ours`);
        }
        await client.closed;
        await s.d.stop();
        await sleep(50);
        assert.equal(s.quits.length, 1, JSON.stringify(s.quits));
      }),
    );

    test(
      "a bad extra argument: ERR_DAEMON_EXITED with the daemon's own message and exit code; nothing left",
      timed(`${dialect} bad arg`, async (t) => {
        const s = setup(t, { extraArgs: ['--bogus-flag'] });
        await rejection(s.start(), 'warm-up start with --bogus-flag'); // lazily opened fds
        const fd0 = h.fdCount();
        const err = await rejection(s.start(), 'start with --bogus-flag');
        await sleep(20);
        assert.equal(h.fdCount(), fd0, 'an fd was leaked');
        assert.ok(err instanceof DaemonStartError, `${err?.name}: ${err?.message}`);
        assert.equal(err.code, 'ERR_DAEMON_EXITED');
        assert.deepEqual(err.exit, { code: facts.bogusExit, signal: null });
        assert.ok(err.message.includes(facts.bogusMessage), err.message);
        assert.ok(
          err.lastLines.some((l) => l.includes(facts.bogusMessage)),
          JSON.stringify(err.lastLines),
        );
        assert.equal(err.argv[0], bin());
        assert.equal(err.argv.at(-1), '--bogus-flag');
        assert.equal(fs.existsSync(s.socketPath), false);
        assert.deepEqual(h.liveChildren(), []);
        assert.deepEqual(h.zombieChildren(), []);
        assert.equal(s.d.pid, 0);
        await sleep(100);
        assert.deepEqual(s.quits, [], 'onQuit not called');
        // The daemon's line reached the logger, as an error.
        const line = s.records.find((r) => typeof r.msg === 'string' && r.msg.includes(facts.bogusMessage));
        assert.ok(line, "the daemon's message was logged");
        assert.equal(line.level, 50);
        assert.equal(line.subsystem, 'virtiofsd');
      }),
    );

    /** Until the daemon's main thread sleeps in the kernel (legacy: in accept()). */
    const blocked = (pid) =>
      h.waitFor(
        () => {
          const st = h.procStat(pid);
          if (!st || st.state !== 'S') return false;
          const wchan = fs.readFileSync(`/proc/${pid}/wchan`, 'utf8');
          return wchan !== '' && wchan !== '0';
        },
        { timeoutMs: 3000, intervalMs: 5, what: `daemon ${pid} to block in the kernel` },
      );

    test(
      `stopSignal SIGTERM while waiting for the front-end: exit code ${facts.sigtermWaiting}, requested true, no SIGKILL`,
      timed(`${dialect} SIGTERM waiting`, async (t) => {
        const s = setup(t, { stopSignal: 'SIGTERM', stopTimeoutMs: 5000 });
        const pid = await s.start();
        // The legacy daemon prints the ready line just BEFORE accept(): a SIGTERM in between is
        // lost (its handler only sets a flag). Wait until it really sleeps in accept().
        await blocked(pid);
        const t0 = Date.now();
        await s.d.stop();
        const ms = Date.now() - t0;
        assert.equal(s.quits.length, 1);
        assert.deepEqual(s.quits[0].exit, { code: facts.sigtermWaiting, signal: null, requested: true, known: true });
        assert.ok(ms < 4000, `stop took ${ms} ms`);
        assert.equal(s.records.filter((r) => /ignored SIGTERM/.test(r.msg)).length, 0);
        assert.deepEqual(h.liveGroupMembers(pid), []);
        assert.equal(fs.existsSync(s.socketPath), false);
      }),
    );

    test(
      `stopSignal SIGTERM while serving a front-end: exit code ${facts.sigtermServing}, requested true, no SIGKILL`,
      timed(`${dialect} SIGTERM serving`, async (t) => {
        const s = setup(t, { stopSignal: 'SIGTERM', stopTimeoutMs: 5000 });
        const pid = await s.start();
        const { client } = await handshake(s.socketPath);
        const t0 = Date.now();
        await s.d.stop();
        const ms = Date.now() - t0;
        assert.equal(s.quits.length, 1);
        assert.deepEqual(s.quits[0].exit, { code: facts.sigtermServing, signal: null, requested: true, known: true });
        assert.ok(ms < 4000, `stop took ${ms} ms`);
        assert.equal(s.records.filter((r) => /ignored SIGTERM/.test(r.msg)).length, 0);
        assert.deepEqual(h.liveGroupMembers(pid), []);
        assert.equal(fs.existsSync(s.socketPath), false);
        await client.closed;
      }),
    );

    test(
      'stopSignal SIGTERM right as start() resolves (20 runs): every stop ends within stopTimeoutMs + slack',
      timed(`${dialect} SIGTERM race`, async (t) => {
        const dir = tempDir(t);
        const socketPath = path.join(dir, 'v.sock');
        const outcomes = {};
        for (let i = 0; i < 20; i++) {
          const { logger } = captureLogger();
          const d = new Virtiofsd({
            path: bin(),
            socketPath,
            sourcePath: dir,
            logger,
            stopSignal: 'SIGTERM',
            stopTimeoutMs: 300,
          });
          track(t, d);
          const quits = [];
          const pid = await d.start((x) => quits.push(x));
          const t0 = Date.now();
          await d.stop();
          const ms = Date.now() - t0;
          assert.ok(ms < 2000, `stop took ${ms} ms`);
          assert.equal(quits.length, 1);
          const x = quits[0];
          assert.equal(x.requested, true);
          assert.ok(
            (x.code === facts.sigtermWaiting && x.signal === null) || (x.code === null && x.signal === 'SIGKILL'),
            JSON.stringify(x),
          );
          const key = x.signal ?? `code ${x.code}`;
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          assert.deepEqual(h.liveGroupMembers(pid), []);
          assert.equal(fs.existsSync(socketPath), false);
        }
        // Legacy: a few of these need the SIGKILL (the SIGTERM landed before accept()).
        t.diagnostic(`${dialect}: SIGTERM right after start: ${JSON.stringify(outcomes)}`);
      }),
    );

    test(
      'onQuit may start the daemon again (re-entry from the callback)',
      timed(`${dialect} restart from onQuit`, async (t) => {
        const dir = tempDir(t);
        const socketPath = path.join(dir, 'v.sock');
        const { logger } = captureLogger();
        const d = new Virtiofsd({ path: bin(), socketPath, sourcePath: dir, logger });
        const pgids = track(t, d);
        const quits = [];
        let restarted;
        const pid1 = await d.start((x) => {
          quits.push(x);
          restarted = d.start((y) => quits.push(y));
        });
        const first = h.procStat(pid1);
        const c1 = await handshake(socketPath);
        c1.client.close(); // the daemon exits by itself -> onQuit -> start()
        await h.waitFor(() => restarted, { what: 'the restart from onQuit' });
        const pid2 = await restarted;
        pgids.add(pid2);
        // A new daemon, not the old one: the first is reaped and the second runs. (Not pid2 !==
        // pid1, which a recycled pid could break without anything being wrong.)
        assert.ok(isReaped(first), `the first daemon is still there: ${JSON.stringify(h.procStat(pid1))}`);
        assert.ok(isRunning(h.procStat(pid2) ?? { pid: pid2 }), `the restarted daemon ${pid2} does not run`);
        assert.equal(d.pid, pid2);
        assert.deepEqual(quits, [{ code: 0, signal: null, requested: false, known: true }]);
        assert.ok(isSocket(socketPath), 'the new daemon has its socket');
        const c2 = await handshake(socketPath);
        await d.stop();
        await c2.client.closed;
        assert.deepEqual(quits, [
          { code: 0, signal: null, requested: false, known: true },
          { code: null, signal: 'SIGKILL', requested: true, known: true },
        ]);
        assert.deepEqual(h.liveGroupMembers(pid1), []);
        assert.deepEqual(h.liveGroupMembers(pid2), []);
        assert.equal(fs.existsSync(socketPath), false);
      }),
    );

    test(
      'concurrent stop() calls both resolve with one stop; a later stop() is a no-op',
      timed(`${dialect} concurrent stop`, async (t) => {
        const s = setup(t);
        const pid = await s.start();
        const p1 = s.d.stop();
        const p2 = s.d.stop();
        t.diagnostic(`${dialect}: concurrent stop() promises identical: ${p1 === p2}`);
        await Promise.all([p1, p2]);
        assert.equal(s.quits.length, 1);
        assert.deepEqual(s.quits[0].exit, { code: null, signal: 'SIGKILL', requested: true, known: true });
        assert.deepEqual(h.liveGroupMembers(pid), []);
        assert.equal(fs.existsSync(s.socketPath), false);
        await s.d.stop();
        assert.equal(s.quits.length, 1);
        assert.equal(s.records.filter((r) => r.msg === 'virtiofsd quits').length, 1);
      }),
    );

    test(
      'start while running (and while starting) rejects ERR_DAEMON_RUNNING; the running daemon is unharmed',
      timed(`${dialect} start twice`, async (t) => {
        const s = setup(t);
        // While starting.
        const first = s.start();
        const whileStarting = await rejection(s.d.start(), 'start while starting');
        assert.ok(whileStarting instanceof DaemonRunningError, `${whileStarting?.name}: ${whileStarting?.message}`);
        assert.equal(whileStarting.code, 'ERR_DAEMON_RUNNING');
        const pid = await first;
        // While running.
        const err = await rejection(s.d.start(), 'start while running');
        assert.ok(err instanceof DaemonRunningError);
        assert.equal(err.code, 'ERR_DAEMON_RUNNING');
        assert.ok(err.message.includes(String(pid)), err.message);
        assert.equal(s.d.pid, pid);
        assert.ok(isSocket(s.socketPath));
        const running = h.procStat(pid);
        assert.ok(isRunning(running), `the first daemon ${pid} was harmed: ${JSON.stringify(running)}`);
        const { client } = await handshake(s.socketPath);
        await s.d.stop();
        await client.closed;
        assert.equal(s.quits.length, 1);
        // And once stopped it starts again: a new daemon (the first is reaped) that serves.
        const pid2 = await s.start();
        assert.ok(isReaped(running), `the first daemon is still there: ${JSON.stringify(h.procStat(pid))}`);
        assert.equal(s.d.pid, pid2);
        const again = await handshake(s.socketPath);
        await s.d.stop();
        await again.client.closed;
        assert.equal(s.quits.length, 2);
      }),
    );

    test(
      'stop() while start() is pending: no daemon is left running once both settle',
      timed(`${dialect} stop during start`, async (t) => {
        const s = setup(t);
        const starting = s.start();
        await s.d.stop();
        const outcome = await starting.then(
          (pid) => ({ pid }),
          (err) => ({ err }),
        );
        // Right behaviour: a stop() issued during start() either makes start() reject or stops
        // the daemon it started; after both have settled no daemon runs.
        const running = outcome.pid ? h.liveGroupMembers(outcome.pid) : [];
        assert.equal(
          s.d.pid,
          0,
          `after stop() resolved, start() resolved with a running daemon (pid ${outcome.pid}); ` +
            `live: ${JSON.stringify(running.map((p) => p.pid))}`,
        );
        assert.deepEqual(running, []);
        assert.equal(fs.existsSync(s.socketPath), false);
      }),
    );
  });
}

// The aggregate of this file's timed() tests (each also reports its own as a diagnostic).
after(printTimings);

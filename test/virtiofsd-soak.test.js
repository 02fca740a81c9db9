'use strict';
/**
 * The long runs of Virtiofsd (src/virtiofsd.ts): a stderr flood through the logger (every line
 * arrives, in order, memory stays bounded) and 500 start/stop cycles per real dialect (fds,
 * zombies, processes, socket and RSS back to baseline).
 *
 * Build first: npm run build:ts && npm run build:helpers (the flood is build/helpers/stderr-flood)
 * Run: node --test --test-concurrency=1 test/virtiofsd-soak.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Writable } = require('node:stream');
const pino = require('pino');

const { Virtiofsd } = require('../dist/index.js');
const h = require('./helpers/daemons.js');
const {
  MiB,
  countingLogger,
  processIdentity,
  root: ROOT,
  rssMiB,
  script,
  settleRss,
  sleep,
  tempDir,
} = require('./helpers/util.js');
const { LEGACY_READY_LINE, handshake, printTimings, timed, track } = require('./helpers/virtiofsd.js');

const FLOOD = path.join(ROOT, 'build', 'helpers', 'stderr-flood');

// ---------------------------------------------------------------------------------------------
// Output that never stops: every line arrives, in order, memory stays bounded

describe('stderr flood through the logger', () => {
  /** Checks the flood's records as pino writes them: sequence, content, truncation. */
  class FloodChecker extends Writable {
    constructor(maxLineBytes) {
      super({ decodeStrings: false });
      this.max = maxLineBytes;
      this.next = 0;
      this.readyAt = -1;
      this.records = 0;
      this.truncated = 0;
      this.summary = null;
      this.tail = null;
      this.errors = [];
      this.cycle = 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil((65536 + 52) / 26));
    }

    fail(msg) {
      if (this.errors.length < 20) this.errors.push(msg);
    }

    _write(chunk, _enc, cb) {
      try {
        this.check(JSON.parse(String(chunk)));
      } catch (err) {
        this.fail(`bad record: ${err.message}`);
      }
      cb();
    }

    /** The line as the scanner must deliver it: cut at max bytes, with the marker. */
    expect(full) {
      if (full.length <= this.max) return { msg: full, truncated: undefined };
      const dropped = full.length - this.max;
      return { msg: `${full.slice(0, this.max)} …[truncated ${dropped} bytes]`, truncated: dropped };
    }

    check(rec) {
      this.records++;
      const msg = rec.msg;
      if (typeof msg !== 'string') return;
      if (msg === LEGACY_READY_LINE) {
        if (this.next !== 0) this.fail(`ready line after #${this.next - 1}`);
        this.readyAt = this.records;
        return;
      }
      let m = /^#(\d+) (\d+) /.exec(msg);
      if (m) {
        const n = Number(m[1]);
        const len = Number(m[2]);
        if (this.summary) this.fail(`#${n} after the summary`);
        if (n !== this.next) this.fail(`line #${n} where #${this.next} was due`);
        this.next = n + 1;
        // ASCII only, so characters are bytes. Only what the scanner keeps is built.
        const total = m[0].length + len;
        const kept = Math.min(total, this.max) - m[0].length;
        const want = {
          msg:
            m[0] +
            this.cycle.substr(n % 26, kept) +
            (total > this.max ? ` …[truncated ${total - this.max} bytes]` : ''),
          truncated: total > this.max ? total - this.max : undefined,
        };
        if (rec.truncated !== undefined) this.truncated++;
        if (rec.truncated !== want.truncated) this.fail(`#${n}: truncated ${rec.truncated}, want ${want.truncated}`);
        if (msg !== want.msg) this.fail(`#${n}: content differs (got ${msg.length} chars, want ${want.msg.length})`);
        return;
      }
      m = /^flood-done lines=(\d+) bytes=(\d+) long=(\d+) max_write_block_us=(\d+) total_write_block_us=(\d+)/.exec(
        msg,
      );
      if (m) {
        if (this.summary) this.fail('second summary');
        this.summary = { lines: +m[1], bytes: +m[2], long: +m[3], maxWriteBlockUs: +m[4], totalWriteBlockUs: +m[5] };
        if (this.summary.lines !== this.next) this.fail(`summary says ${m[1]} lines, got #0..#${this.next - 1}`);
        return;
      }
      m = /^#tail (\d+) /.exec(msg);
      if (m) {
        if (!this.summary) this.fail('tail before the summary');
        const total = Number(m[1]);
        const full = m[0] + 'x'.repeat(total - m[0].length);
        const want = this.expect(full);
        if (rec.truncated !== want.truncated) this.fail(`tail: truncated ${rec.truncated}, want ${want.truncated}`);
        if (msg !== want.msg) this.fail('tail: content differs');
        this.tail = { total };
        return;
      }
      if (msg.startsWith('#') || msg.startsWith('flood'))
        this.fail(`unexpected line ${JSON.stringify(msg.slice(0, 80))}`);
    }
  }

  test(
    'every line arrives in order (truncated ones with the marker); RSS growth bounded',
    { timeout: 180000 },
    timed('stderr flood', async (t) => {
      assert.ok(fs.existsSync(FLOOD), `${FLOOD} is missing: run node scripts/build-helpers.js`);
      const dir = tempDir(t);
      const bytes = 200 * MiB;
      // stderr-flood refuses unknown arguments (exit 2, "unknown argument '-o'"), and the legacy
      // argv is `-o cache=… -o source=… --fd=3 -f`: a wrapper drops the daemon's argv.
      const wrapper = script(path.join(dir, 'flood'), `exec '${FLOOD}' --print-ready --bytes ${bytes} --seed 7`);
      const checker = new FloodChecker(16 * 1024);
      const logger = pino({ level: 'debug', base: null }, checker);
      const socketPath = path.join(dir, 'v.sock');
      const d = new Virtiofsd({ path: wrapper, dialect: 'legacy', socketPath, sourcePath: dir, logger });
      track(t, d);

      const rss0 = settleRss();
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, rssMiB())), 20);
      t.after(() => clearInterval(sampler));
      const quits = [];
      const t0 = Date.now();
      const pid = await d.start((x) => quits.push(x));
      await h.waitFor(() => quits.length > 0, { timeoutMs: 150000, intervalMs: 50, what: 'the flood to end' });
      const ms = Date.now() - t0;
      clearInterval(sampler);
      peak = Math.max(peak, rssMiB());
      const rss1 = settleRss();

      assert.deepEqual(quits, [{ code: 0, signal: null, requested: false, known: true }]);
      assert.deepEqual(h.liveGroupMembers(pid), []);
      assert.equal(fs.existsSync(socketPath), false);
      assert.deepEqual(checker.errors, []);
      assert.ok(checker.readyAt > 0, 'ready line seen');
      assert.ok(checker.summary, 'summary line seen');
      assert.ok(checker.tail, 'unterminated tail flushed at EOF');
      assert.equal(checker.next, checker.summary.lines);
      assert.ok(
        checker.truncated >= checker.summary.long,
        `${checker.truncated} truncated, ${checker.summary.long} long lines`,
      );
      const growth = peak - rss0;
      const report =
        `flood: ${checker.summary.lines} lines, ${(checker.summary.bytes / MiB).toFixed(0)} MiB in ${ms} ms ` +
        `(${(checker.summary.bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s), ${checker.truncated} truncated; ` +
        `daemon max_write_block_us=${checker.summary.maxWriteBlockUs} total_write_block_us=${checker.summary.totalWriteBlockUs}; ` +
        `parent RSS ${rss0.toFixed(1)} -> peak ${peak.toFixed(1)} MiB (+${growth.toFixed(1)}), after gc ${rss1.toFixed(1)} MiB`;
      t.diagnostic(report);
      console.log(`# ${report}`);
      assert.ok(growth < 64, `parent RSS grew by ${growth.toFixed(1)} MiB during the flood`);
    }),
  );
});

// ---------------------------------------------------------------------------------------------
// Long loops last

describe('500 start/stop cycles', () => {
  for (const dialect of h.DIALECTS) {
    test(
      `${dialect}: fds, zombies, processes, socket and RSS back to baseline`,
      { timeout: 600000 },
      timed(`${dialect} 500 cycles`, async (t) => {
        const binary = h.virtiofsdPath(dialect);
        const dir = tempDir(t);
        const socketPath = path.join(dir, 'v.sock');
        const { logger, counter } = countingLogger();
        const pgids = new Set();
        // pid@starttime per start: over 500 cycles the kernel may hand out a pid again.
        const processes = new Set();
        const d = new Virtiofsd({ path: binary, socketPath, sourcePath: dir, logger });
        const tracked = track(t, d);
        let quits = 0;
        const onQuit = (x) => {
          quits++;
          if (!x.requested || x.signal !== 'SIGKILL') throw new Error(`unexpected exit ${JSON.stringify(x)}`);
        };
        const cycle = async () => {
          const pid = await d.start(onQuit);
          pgids.add(pid);
          processes.add(processIdentity(pid));
          await d.stop();
        };
        for (let i = 0; i < 10; i++) await cycle(); // warm-up
        await sleep(50);
        const fd0 = h.fdCount();
        const fdTable0 = h.fdTable();
        const rss0 = settleRss();
        const N = 500;
        const perCycle = [];
        const t0 = Date.now();
        for (let i = 0; i < N; i++) {
          const c0 = process.hrtime.bigint();
          await cycle();
          perCycle.push(Number(process.hrtime.bigint() - c0) / 1e6);
        }
        const ms = Date.now() - t0;
        // Handshake once at the end: the daemon still works after all that.
        const pid = await d.start(onQuit);
        pgids.add(pid);
        processes.add(processIdentity(pid));
        const { client } = await handshake(socketPath);
        await d.stop();
        await client.closed;
        await sleep(50);

        for (const p of pgids) tracked.add(p);
        const rss1 = settleRss();
        perCycle.sort((a, b) => a - b);
        const pct = (q) => perCycle[Math.min(perCycle.length - 1, Math.floor(q * perCycle.length))].toFixed(1);
        const report =
          `${dialect}: ${N} cycles in ${ms} ms (${(ms / N).toFixed(1)} ms/cycle; p50 ${pct(0.5)} p95 ${pct(0.95)} max ${pct(1)} ms); ` +
          `RSS ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MiB (${rss1 - rss0 >= 0 ? '+' : ''}${(rss1 - rss0).toFixed(1)}); ` +
          `fds ${fd0} -> ${h.fdCount()}; ${counter.n} log records`;
        t.diagnostic(report);
        console.log(`# ${report}`);

        assert.equal(quits, N + 11);
        assert.equal(processes.size, N + 11, 'every start made a new process');
        assert.equal(h.fdCount(), fd0, `fds: before ${JSON.stringify(fdTable0)} after ${JSON.stringify(h.fdTable())}`);
        assert.deepEqual(h.zombieChildren(), []);
        assert.deepEqual(h.liveMembersOfGroups(pgids), []);
        assert.deepEqual(h.liveChildren(), []);
        assert.equal(fs.existsSync(socketPath), false);
        assert.ok(rss1 - rss0 < 50, `RSS grew by ${(rss1 - rss0).toFixed(1)} MiB over ${N} cycles`);
      }),
    );
  }

  test('timings', () => printTimings());
});

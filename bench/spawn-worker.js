'use strict';
/**
 * Table 1 worker: `node --expose-gc bench/spawn-worker.js --rss MB --target PATH`, forked by
 * index.js with an IPC channel. Grows its RSS to about MB MiB (touched Buffers), listens on a
 * unix socket, then runs rounds on request:
 *
 *   {id, cmd: 'round', mode: 'ours' | 'ours-env' | 'cp', n, maxMs}
 *     → {spawnUs: [...], reapedUs: [...]}: for each spawn, one at a time, the time from before
 *       spawn() until spawn() returned, and until the exit callback ('exit' event) fired.
 *       A round ends after n spawns or once maxMs have passed (and at least 3 spawns).
 *
 * Both spawners give the child /dev/null on 0, 1 and 2 and the listening socket at 3, and
 * leave env at its default (process.env). 'ours-env' (for diagnosis) passes the same environment
 * as an array built once, so that process.env is not walked on every spawn.
 */
const cp = require('node:child_process');
const path = require('node:path');
const c = require('./common.js');

const args = c.parseArgs();
const rssMB = Number(args.rss);
const target = args.target;
if (!Number.isFinite(rssMB) || !target) {
  process.stderr.write('usage: node --expose-gc bench/spawn-worker.js --rss MB --target PATH\n');
  process.exit(2);
}

const { native } = c.lib();
const keep = c.ballast(rssMB);
const sock = native.listenUnix(path.join(c.runDir || require('node:os').tmpdir(), `t1-${process.pid}.sock`));

/** For 'ours-env' (a diagnosis, not in the default tables): the environment as a ready array. */
const envArray = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);

function ours(env) {
  return new Promise((resolve, reject) => {
    let t1 = 0;
    const t0 = c.nowUs();
    try {
      native.spawn({
        file: target,
        argv: [target],
        env,
        fds: ['null', 'null', 'null', sock.fd],
        onExit: (exit) => {
          const t2 = c.nowUs();
          if (exit.code !== 0) reject(new Error(`target exited ${JSON.stringify(exit)}`));
          else resolve([t1 - t0, t2 - t0]);
        },
      });
    } catch (err) {
      reject(err);
      return;
    }
    t1 = c.nowUs();
  });
}

function viaChildProcess() {
  return new Promise((resolve, reject) => {
    const t0 = c.nowUs();
    const child = cp.spawn(target, [], { stdio: ['ignore', 'ignore', 'ignore', sock.fd] });
    const t1 = c.nowUs();
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const t2 = c.nowUs();
      if (code !== 0) reject(new Error(`target exited code ${code} signal ${signal}`));
      else resolve([t1 - t0, t2 - t0]);
    });
  });
}

async function round({ mode, n, maxMs }) {
  const once =
    mode === 'ours'
      ? () => ours(undefined)
      : mode === 'ours-env'
        ? () => ours(envArray)
        : mode === 'cp'
          ? viaChildProcess
          : null;
  if (!once) throw new Error(`unknown mode ${mode}`);
  if (global.gc) global.gc();
  const spawnUs = [];
  const reapedUs = [];
  const start = c.nowUs();
  for (let i = 0; i < n; i++) {
    const [s, r] = await once();
    spawnUs.push(s);
    reapedUs.push(r);
    if (i >= 2 && maxMs && c.nowUs() - start > maxMs * 1000) break;
  }
  return { spawnUs, reapedUs, rssKB: c.rssKB() };
}

c.serve(
  (msg) => {
    if (msg.cmd === 'round') return round(msg);
    throw new Error(`unknown request ${JSON.stringify(msg)}`);
  },
  () => {
    native.closeFd(sock.fd);
    native.unlinkSocket(sock);
    keep.length = 0;
  },
);
process.send({ event: 'ready', rssKB: c.rssKB(), threads: c.threadCount() });

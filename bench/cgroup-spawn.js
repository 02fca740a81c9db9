'use strict';
/**
 * `node bench/cgroup-spawn.js`: what placing a child in a cgroup costs at spawn. Three ways,
 * interleaved round by round, each spawning bench/true (exits at once) and waiting for its exit:
 * no cgroup; clone3(CLONE_INTO_CGROUP) (our default); the child writing "0" to cgroup.procs
 * before exec (the fallback). Prints a markdown table; asserts nothing.
 *
 *   BENCH_ROUNDS (default 20), BENCH_SPAWNS per way per round (default 100)
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./common.js');

const { native } = c.lib();
const { cgroup2Mount } = require(path.join(c.root, 'dist', 'process', 'cgroup.js'));

const rounds = Number(process.env.BENCH_ROUNDS || 20);
const spawns = Number(process.env.BENCH_SPAWNS || 100);
const target = path.join(c.binDir, 'true');

function once(way, cgroupFd) {
  return new Promise((resolve) => {
    const t0 = c.nowUs();
    let returned = 0;
    native.spawn({
      file: target,
      argv: [target],
      fds: ['null', 'null', 'null'],
      newProcessGroup: true,
      cgroupFd: way === 'none' ? undefined : cgroupFd,
      cgroupMethod: way === 'procs' ? 'procs' : 'clone',
      onExit: () => resolve({ total: c.nowUs() - t0, call: returned - t0 }),
    });
    returned = c.nowUs();
  });
}

async function main() {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 mounted here');
  const dir = fs.mkdtempSync(path.join(mount, 'vfd-bench-'));
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const ways = ['none', 'clone3', 'procs'];
  const samples = Object.fromEntries(ways.map((w) => [w, { total: [], call: [] }]));
  try {
    for (let i = 0; i < 50; i++) for (const w of ways) await once(w, fd); // warm-up
    for (let r = 0; r < rounds; r++) {
      const order = ways.slice(r % 3).concat(ways.slice(0, r % 3));
      for (const w of order) {
        for (let i = 0; i < spawns; i++) {
          const s = await once(w, fd);
          samples[w].total.push(s.total);
          samples[w].call.push(s.call);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.rmdirSync(dir);
  }
  const base = c.summary(samples.none.total).median;
  const label = { none: 'no cgroup', clone3: 'clone3(CLONE_INTO_CGROUP)', procs: 'child writes cgroup.procs' };
  console.log(
    `cgroup v2 at ${mount}; ${rounds} rounds × ${spawns} spawns per way, interleaved; load ${c.loadAverages()}`,
  );
  console.log('');
  console.log('| placement | spawn → exit, median µs | p99 µs | spawn() returns, median µs | median ×no cgroup | n |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const w of ways) {
    const t = c.summary(samples[w].total);
    const k = c.summary(samples[w].call);
    console.log(
      `| ${label[w]} | ${t.median.toFixed(0)} | ${t.p99.toFixed(0)} | ${k.median.toFixed(0)} | ${(t.median / base).toFixed(2)}× | ${t.n} |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

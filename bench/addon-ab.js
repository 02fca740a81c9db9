'use strict';
/**
 * `node bench/addon-ab.js BEFORE.node AFTER.node`: what a change to the native spawn costs.
 * Both builds of the addon are loaded into this one process (copy build/Release/virtiofs_daemon.node
 * aside before and after the change) and spawn bench/true, waiting for its exit, without a
 * cgroup and with clone3(CLONE_INTO_CGROUP) into a fresh cgroup: four ways, interleaved spawn
 * by spawn with a rotating order, so that the host's load falls on all of them alike. Prints a
 * markdown table with each AFTER median as a ratio of BEFORE's; asserts nothing.
 *
 *   BENCH_SPAWNS per way (default 3000), after 200 of each to warm up
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./common.js');

const { cgroup2Mount } = require(path.join(c.root, 'dist', 'process', 'cgroup.js'));

const spawns = Number(process.env.BENCH_SPAWNS || 3000);
const target = path.join(c.binDir, 'true');

/** One spawn → exit through a raw addon (its own spawn(), as src/native.ts calls it), in µs. */
function once(addon, cgroupFd) {
  return new Promise((resolve) => {
    const t0 = c.nowUs();
    const options = cgroupFd === undefined ? undefined : { cgroupFd };
    addon.spawn(target, [target], null, null, ['null', 'null', 'null'], true, () => resolve(c.nowUs() - t0), options);
  });
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length !== 2) throw new Error('usage: node bench/addon-ab.js BEFORE.node AFTER.node');
  const addons = files.map((f) => require(path.resolve(f)));
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup v2 mounted here');
  const dir = fs.mkdtempSync(path.join(mount, 'vfd-bench-ab-'));
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const ways = [];
  for (const placement of ['none', 'clone3']) {
    for (const [i, label] of ['before', 'after'].entries()) {
      ways.push({ placement, label, addon: addons[i], cgroupFd: placement === 'none' ? undefined : fd, us: [] });
    }
  }
  try {
    for (let i = 0; i < 200; i++) for (const w of ways) await once(w.addon, w.cgroupFd);
    for (let i = 0; i < spawns; i++) {
      for (let j = 0; j < ways.length; j++) {
        const w = ways[(i + j) % ways.length];
        w.us.push(await once(w.addon, w.cgroupFd));
      }
    }
  } finally {
    fs.closeSync(fd);
    fs.rmdirSync(dir);
  }
  console.log(`before ${files[0]}, after ${files[1]}; ${spawns} spawns per way, interleaved; load ${c.loadAverages()}`);
  console.log('');
  console.log('| placement | build | spawn → exit, median µs | p99 µs | median ×before | n |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const w of ways) {
    const s = c.summary(w.us);
    const base = c.summary(ways.find((v) => v.placement === w.placement && v.label === 'before').us).median;
    console.log(
      `| ${w.placement === 'none' ? 'no cgroup' : 'clone3(CLONE_INTO_CGROUP)'} | ${w.label} | ${s.median.toFixed(0)} | ` +
        `${s.p99.toFixed(0)} | ${(s.median / base).toFixed(3)}× | ${s.n} |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

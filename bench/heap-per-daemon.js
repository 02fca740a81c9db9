'use strict';
/**
 * `node --expose-gc bench/heap-per-daemon.js`: what each running daemon keeps on the JS heap.
 * Starts N daemons through the public API (`Virtiofsd.start()`, the libc stand-in
 * bench/ready-standin.c that prints the ready line and waits), takes a heap snapshot before the
 * first start and one while all N run (each after a full GC), and prints the difference by
 * object kind, per daemon: what a `Virtiofsd` costs to keep, and which objects make it up.
 *
 * Knobs: HEAP_N (default 300), HEAP_TOP (default 25), HEAP_TICK_MS (default 0: the stand-in
 * logs nothing after its ready line; 1000 for a line a second), HEAP_ROOT (the package to
 * measure, default this one: point it at another checkout to compare).
 *
 * A measurement tool: nothing is asserted. Markdown on stdout, progress on stderr.
 */
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');

const N = Number(process.env.HEAP_N || 300);
const TOP = Number(process.env.HEAP_TOP || 25);
const ROOT = path.resolve(process.env.HEAP_ROOT || path.join(__dirname, '..'));

function gc() {
  if (!global.gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) global.gc();
}

/** Self size and count per object kind ("type name", strings as one kind) of a heap snapshot file. */
function kinds(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    let name = snap.strings[nodes[i + iName]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    else if (type === 'number') name = '';
    else if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type}\t${name}`;
    const k = out.get(key) || { size: 0, count: 0 };
    k.size += nodes[i + iSize];
    k.count++;
    out.set(key, k);
  }
  return out;
}

async function main() {
  const pino = require(require.resolve('pino', { paths: [ROOT] }));
  const { Virtiofsd } = require(path.join(ROOT, 'dist', 'virtiofsd', 'virtiofsd.js'));
  const standin = path.join(__dirname, '..', 'build', 'helpers', 'ready-standin');
  if (!fs.existsSync(standin)) throw new Error(`${standin} is missing: npm run build:helpers`);
  const dir = fs.mkdtempSync(path.join(require('./common.js').tmpBase(), 'vfd-heap-'));
  const env = { ...process.env, STANDIN_TICK_MS: process.env.HEAP_TICK_MS || '0' };
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const make = (i) =>
    new Virtiofsd({
      path: standin,
      dialect: 'rust',
      socketPath: path.join(dir, `h${i}.sock`),
      sourcePath: dir,
      logger,
      env,
    });
  // Everything loaded and made once (modules, the runtime directory, the logger's child) outside the count.
  for (let i = 0; i < 3; i++) {
    const w = make(`w${i}`);
    await w.start();
    await w.stop();
  }
  gc();
  const before = path.join(dir, 'before.heapsnapshot');
  v8.writeHeapSnapshot(before);
  const heap0 = process.memoryUsage().heapUsed;
  process.stderr.write(`[heap] starting ${N} daemons\n`);
  const ds = Array.from({ length: N }, (_, i) => make(i));
  await Promise.all(ds.map((d) => d.start()));
  await new Promise((r) => setTimeout(r, 200));
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const after = path.join(dir, 'after.heapsnapshot');
  v8.writeHeapSnapshot(after);
  await Promise.all(ds.map((d) => d.stop()));
  const a = kinds(before);
  const b = kinds(after);
  fs.rmSync(dir, { recursive: true, force: true });
  const rows = [];
  for (const [key, k] of b) {
    const was = a.get(key) || { size: 0, count: 0 };
    const size = k.size - was.size;
    const count = k.count - was.count;
    if (size !== 0 || count !== 0) rows.push({ key, size, count });
  }
  rows.sort((x, y) => y.size - x.size);
  const total = rows.reduce((s, r) => s + r.size, 0);
  const lines = [
    `${new Date().toISOString()} · Node ${process.version} · ${ROOT}`,
    '',
    `${N} running daemons: heapUsed +${((heap1 - heap0) / N).toFixed(0)} bytes per daemon; ` +
      `snapshot difference +${(total / N).toFixed(0)} bytes per daemon (self sizes).`,
    '',
    '| bytes / daemon | objects / daemon | kind | name |',
    '| ---: | ---: | --- | --- |',
  ];
  for (const r of rows.slice(0, TOP)) {
    const [type, name] = r.key.split('\t');
    lines.push(
      `| ${(r.size / N).toFixed(0)} | ${(r.count / N).toFixed(2)} | ${type} | ${name.replace(/\|/g, '\\|')} |`,
    );
  }
  console.log(lines.join('\n'));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

'use strict';
/**
 * A desktop app's manager in miniature, for the guest tests that run everything as an
 * unprivileged user: `node guest-daemon.js <json>` starts one virtiofsd through the public API
 * (as whoever runs it), prints one JSON line on stdout - `{ pid, argv, socketPath, qemuArgs }`,
 * argv as /proc/<pid>/cmdline has it, qemuArgs being the daemon's own `qemuArgs({ tag, memory })`
 * - or `{ error: { name, code, option, message } }`, then serves until its stdin closes, when it
 * stops the daemon and exits.
 *
 * json: { path, socketPath, sourcePath, tag, memory, options } (socketPath may be left out: the
 * default in the user's runtime directory; options: more Virtiofsd options, idmap included).
 */
const args = process.argv[2] ? JSON.parse(process.argv[2]) : null;
if (!args) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const fs = require('node:fs');
const pino = require('pino');
const { Virtiofsd } = require('../../dist/index.js');

(async () => {
  const daemon = new Virtiofsd({
    path: args.path,
    ...(args.socketPath === undefined ? {} : { socketPath: args.socketPath }),
    sourcePath: args.sourcePath,
    logger: pino({ level: 'warn' }, pino.destination(2)),
    ...args.options,
  });
  const pid = await daemon.start();
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  const qemuArgs = daemon.qemuArgs({ tag: args.tag, memory: args.memory });
  process.stdout.write(`${JSON.stringify({ pid, argv, socketPath: daemon.socketPath, qemuArgs })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void daemon.stop().then(() => process.exit(0)));
})().catch((err) => {
  const { name, code, option, message } = err ?? {};
  process.stdout.write(`${JSON.stringify({ error: { name, code, option, message: String(message ?? err) } })}\n`);
  process.exit(1);
});

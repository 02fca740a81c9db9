'use strict';
/**
 * A desktop app's manager in miniature, for the guest tests that run everything as an
 * unprivileged user: `node guest-daemon.js <json>` starts one virtiofsd through the public API
 * (as whoever runs it), prints one JSON line on stdout - `{ pid, argv, qemuArgs }`, qemuArgs
 * being the daemon's own `qemuArgs({ tag, memory })` - or `{ error }`, then serves until its
 * stdin closes, when it stops the daemon and exits.
 *
 * json: { path, socketPath, sourcePath, tag, memory, options } (options: more Virtiofsd options).
 */
const args = process.argv[2] ? JSON.parse(process.argv[2]) : null;
if (!args) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const pino = require('pino');
const { Virtiofsd } = require('../../dist/index.js');

(async () => {
  const daemon = new Virtiofsd({
    path: args.path,
    socketPath: args.socketPath,
    sourcePath: args.sourcePath,
    logger: pino({ level: 'warn' }, pino.destination(2)),
    ...args.options,
  });
  const pid = await daemon.start();
  const { argv } = daemon.handle();
  process.stdout.write(
    `${JSON.stringify({ pid, argv, qemuArgs: daemon.qemuArgs({ tag: args.tag, memory: args.memory }) })}\n`,
  );
  process.stdin.resume();
  process.stdin.on('end', () => void daemon.stop().then(() => process.exit(0)));
})().catch((err) => {
  process.stdout.write(`${JSON.stringify({ error: String(err && err.stack) })}\n`);
  process.exit(1);
});

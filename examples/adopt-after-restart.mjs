// A daemon that outlives its manager (lifetime 'survive'), and a later manager that takes it
// over from its handle: an agent upgrade or restart without taking the share away from the VM.
//
//   node examples/adopt-after-restart.mjs start /srv/vm1 /run/vm1.sock   # prints the state file, exits
//   node examples/adopt-after-restart.mjs stop                            # adopts it and stops it
//
// The handle is sealed (only a manager of this user on this boot can write one that adopt()
// accepts) and kept in a file only this user can write: here, beside the library's own files in
// its runtime directory.
import fs from 'node:fs';
import path from 'node:path';
import { Virtiofsd, runtimeDir } from 'virtiofs-daemon';

const [command, sourcePath = process.cwd(), socketPath = '/tmp/virtiofs-adopt-example.sock'] = process.argv.slice(2);
const stateFile = path.join(runtimeDir(), 'example-vm1.json');

if (command === 'start') {
  const daemon = new Virtiofsd({ sourcePath, socketPath, lifetime: 'survive' });
  await daemon.start();
  fs.writeFileSync(stateFile, JSON.stringify(daemon.handle()), { mode: 0o600 });
  console.log(stateFile);
  process.exit(0); // the daemon keeps serving; its output waits in a 1 MiB pipe for the next manager
} else if (command === 'stop') {
  const handle = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  // Proven ours before anything is signalled: this boot, its pid and start time, our uid, the
  // seal, its executable, its output pipe and its sockets. Its lines logged meanwhile come first.
  const daemon = await Virtiofsd.adopt(handle, { onQuit: (exit) => console.log('onQuit', exit) });
  console.log(`adopted virtiofsd ${daemon.pid}`);
  await daemon.stop();
  fs.rmSync(stateFile);
} else {
  console.error('usage: adopt-after-restart.mjs start [DIR] [SOCKET] | stop');
  process.exit(2);
}

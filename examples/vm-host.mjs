// A VM host serving a directory to one guest: start virtiofsd (either dialect, found the usual
// way), print the QEMU options that attach a guest to it, and stop it (socket removed) on
// Ctrl-C or SIGTERM. Run as root:
//
//   node examples/vm-host.mjs /srv/vm1 /run/vm1.sock
//
// Then start QEMU with the printed options plus your kernel/disk options.
import { Virtiofsd } from 'virtiofs-daemon';

const [sourcePath = process.cwd(), socketPath = '/tmp/virtiofs-example.sock'] = process.argv.slice(2);

const daemon = new Virtiofsd({
  sourcePath,
  socketPath,
  stopSignal: 'SIGTERM', // give it a chance to exit cleanly; SIGKILL follows after stopTimeoutMs
});

const pid = await daemon.start((exit) => {
  // Exactly once, after the daemon is reaped: our own stop, or the VM disconnected, or a crash.
  console.error(`virtiofsd ended: ${JSON.stringify(exit)}`);
  process.exitCode = exit.requested ? 0 : 1;
});
// Before anything is printed: whoever reads the options may stop us the moment they appear.
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void daemon.stop());
console.error(`virtiofsd ${pid} serves ${sourcePath} on ${socketPath}`);

// An argv array: hand it straight to child_process.spawn('qemu-system-x86_64', [...args, ...]).
console.log(daemon.qemuArgs({ tag: 'shared', memory: '2G' }).join(' '));

// A desktop app (Electron main process or utilityProcess, or plain Node) sharing a folder with a
// VM as the logged-in user, no root: the Rust virtiofsd in its own user namespace, the guest's
// user 1000 owning your files, the socket in your private runtime directory, QEMU run by you.
//
//   node examples/desktop-app.mjs ~/shared           # prints the QEMU options, serves until Ctrl-C
//
// Install (Debian 13): apt install virtiofsd qemu-system-x86. Then in the guest:
//   mount -t virtiofs shared /mnt
import { Virtiofsd } from 'virtiofs-daemon';

const [sourcePath = process.cwd()] = process.argv.slice(2);

const daemon = new Virtiofsd({
  sourcePath,
  // The guest's user 1000 (a distribution's first user) reads and writes your files as its own.
  // Needs no /etc/subuid range and no helper; 'auto' maps guest 0.. onto your subordinate ids.
  idmap: { guestUser: 1000 },
  // No path: found through QEMU's vhost-user descriptors (the legacy C daemon, which needs root,
  // is refused with how to get the Rust one). No socketPath: made in your runtime directory.
});

await daemon.start((exit) => {
  // With the default lifetime ('manager') the daemon dies with this process: the guest's next
  // access to the share then hangs. Use lifetime: 'survive' for a VM that outlives the app.
  if (!exit.requested) console.error(`virtiofsd ended by itself: ${JSON.stringify(exit)}`);
});
// Before anything is printed: whoever reads the options may stop us the moment they appear.
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void daemon.stop());
console.error(`serving ${sourcePath} on ${daemon.socketPath}`);
// Hand these to child_process.spawn('qemu-system-x86_64', [...yourOptions, ...args]).
console.log(daemon.qemuArgs({ tag: 'shared', memory: '2G' }).join(' '));

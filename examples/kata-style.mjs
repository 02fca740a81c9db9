// The Kata Containers runtime's VirtiofsDaemon contract, from Kata's own configuration keys:
// Start(onQuit) → pid, then Stop. fromKataConfig turns `virtio_fs_*` keys (either dialect's
// spelling of the extra arguments) into typed options; it applies no policy, so feed it the
// operator's configuration.toml, never pod annotations.
//
//   node examples/kata-style.mjs /run/kata/sandbox-1 /run/kata/sandbox-1/vhost-fs.sock
import { Virtiofsd, fromKataConfig } from 'virtiofs-daemon';

const [sourcePath = process.cwd(), socketPath = '/tmp/virtiofs-kata-example.sock'] = process.argv.slice(2);

const options = fromKataConfig({
  virtio_fs_cache: 'auto',
  virtio_fs_extra_args: ['--thread-pool-size=1', '--announce-submounts'],
});

const daemon = new Virtiofsd({ ...options, sourcePath, socketPath });
const pid = await daemon.start((exit) => {
  // requested: true when the exit followed our stop() (Kata's callers re-entered their own stop here).
  console.log(`onQuit: code ${exit.code}, signal ${exit.signal}, requested ${exit.requested}`);
});
console.log(`started virtiofsd, pid ${pid}`);
await daemon.stop(); // resolves once it is reaped, its group is empty and its socket is gone
console.log('stopped');

// A metrics endpoint for an operator's Prometheus: the daemons this manager runs, their open fds
// against their limit, memory, CPU and threads, read when Prometheus scrapes.
//
//   npm install prom-client            # an optional peer dependency of virtiofs-daemon
//   node examples/metrics.mjs /srv/vm1 /run/vm1.sock 9100
//   curl -s http://127.0.0.1:9100/metrics | grep ^virtiofs_daemon_open_fds
import http from 'node:http';
import { Registry } from 'prom-client';
import { Virtiofsd, daemonMetrics } from 'virtiofs-daemon';

const [sourcePath = process.cwd(), socketPath = '/tmp/virtiofs-metrics-example.sock', port = '9100'] =
  process.argv.slice(2);

const registry = new Registry();
const metrics = daemonMetrics({ registry });

const daemon = new Virtiofsd({ sourcePath, socketPath, rlimitNofile: 16384, fdWarnRatio: 0.8 });
metrics.track(daemon, { id: 'vm1' }); // before start(): the start is counted and timed
await daemon.start();

const server = http.createServer(async (req, res) => {
  if (req.url !== '/metrics') return res.writeHead(404).end();
  res.setHeader('Content-Type', registry.contentType);
  res.end(await registry.metrics()); // one batched /proc sweep for every tracked daemon
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await daemon.stop();
    server.close();
  });
}

server.listen(Number(port), '127.0.0.1', () => console.log(`http://127.0.0.1:${server.address().port}/metrics`));

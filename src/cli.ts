#!/usr/bin/env node
/**
 * virtiofs-daemon run: serve a directory through virtiofsd until Ctrl-C, printing the QEMU
 * options that attach a guest to it. Built on the public API only.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import { runDetached, statusDetached, stopDetached } from './cli-lifetime.js';
import { VirtiofsDaemonError } from './errors.js';
import { daemonMetrics, loadPromClient } from './metrics.js';
import { Virtiofsd, type CacheMode } from './virtiofsd.js';
import type { DaemonExit } from './types.js';

const USAGE = `Usage: virtiofs-daemon run --shared-dir DIR --socket PATH [options] [-- EXTRA_ARGS...]
       virtiofs-daemon run --detach --state FILE --shared-dir DIR --socket PATH [options]
       virtiofs-daemon stop --state FILE
       virtiofs-daemon status --state FILE

Serve DIR to a VM through virtiofsd on the vhost-user socket PATH, print the QEMU options
that attach to it, and stop virtiofsd (removing the socket) on Ctrl-C or SIGTERM.

Options:
  --shared-dir DIR    directory shared with the guest (required)
  --socket PATH       vhost-user socket to create, at most 107 bytes (required)
  --cache MODE        auto | always | never | metadata (Rust virtiofsd only); default auto
  --virtiofsd PATH    the virtiofsd binary; default $VIRTIOFSD, then the usual install paths
  --dialect D         auto | rust | legacy; default auto (asks the binary)
  --tag TAG           mount tag the guest uses (mount -t virtiofs TAG /mnt), at most 36 bytes;
                      default shared
  --memory SIZE       guest RAM for the printed QEMU options, with its unit (512M, 2G); default 2G
  --debug             debug logging in virtiofsd
  --syslog            virtiofsd logs to syslog instead of through us
  --metrics [HOST:]PORT  (run) serve Prometheus metrics at http://HOST:PORT/metrics while it
                      runs (needs prom-client: npm install prom-client). HOST defaults to
                      127.0.0.1; another address must be spelled out as an IP address
                      (0.0.0.0 for every interface, [::1], 10.0.0.5), never a name; PORT 0
                      picks a free port (logged)
  --detach            (run) start a virtiofsd that outlives this command, write its handle
                      to --state FILE and exit 0 once it is ready
  --state FILE        the handle of a detached daemon (JSON, written by run --detach)
  -h, --help          this text
  --version           print the version of virtiofs-daemon
Arguments after -- go to virtiofsd as they are.

stop adopts the daemon of FILE (its output since run --detach comes first), stops it
(SIGTERM, SIGKILL after 3 s) and removes FILE. status says whether it runs and is the very
process FILE names (pid, start time, boot, executable); it signals nothing.

Exit status: 0 after a stop on Ctrl-C/SIGTERM; the daemon's own when it quits by itself
(128+N when signal N killed it); 1 when it cannot start; 2 on bad usage; status and stop:
0 running / stopped, 3 when the daemon of FILE is not running.`;

class UsageError extends Error {}

/** The flag that sets each option of Virtiofsd, so errors name what the user typed. */
const FLAG_OF: Record<string, string> = {
  sourcePath: '--shared-dir',
  socketPath: '--socket',
  path: '--virtiofsd',
  cache: '--cache',
  dialect: '--dialect',
  extraArgs: 'the arguments after --',
  tag: '--tag',
  memory: '--memory',
};

/**
 * An error's message in the CLI's terms: the Virtiofsd option it names (`sourcePath: ...`) becomes
 * the flag that set it (`--shared-dir: ...`).
 */
export function cliMessage(err: unknown): string {
  if (!(err instanceof VirtiofsDaemonError)) return String(err);
  let message = err.message;
  const option = (err as { option?: unknown }).option;
  if (typeof option === 'string') {
    const base = /^\w+/.exec(option)?.[0] ?? option;
    const flag = FLAG_OF[base];
    // The prefix always; elsewhere only names that cannot be ordinary words (sourcePath, not cache).
    if (flag) message = message.replace(new RegExp(/[A-Z]/.test(base) ? `\\b${base}\\b` : `^${base}\\b`, 'g'), flag);
  }
  return message;
}

function version(): string {
  // dist/cli.js -> the package's own package.json.
  return (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

interface RunOptions {
  command: 'run' | 'stop' | 'status';
  detach: boolean;
  state: string | undefined;
  sharedDir: string;
  socket: string;
  cache: CacheMode;
  virtiofsd: string | undefined;
  dialect: 'auto' | 'rust' | 'legacy';
  tag: string;
  memory: string;
  debug: boolean;
  syslog: boolean;
  metrics: MetricsAddress | undefined;
  extraArgs: string[];
}

/** Where --metrics serves. */
export interface MetricsAddress {
  host: string;
  port: number;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * `--metrics [HOST:]PORT`: loopback unless another address is spelled out. A host name other
 * than localhost is refused: it could resolve to any interface, so what is exposed would depend
 * on DNS and /etc/hosts.
 */
export function parseMetricsAddress(value: string): MetricsAddress {
  const m = /^(?:(\[[^\]]*\]|[^:]*):)?(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--metrics: '${value}' is not [HOST:]PORT (e.g. 9100, 127.0.0.1:9100, [::1]:9100)`);
  const port = Number(m[2]);
  if (port > 65535) throw new UsageError(`--metrics: port ${port} is not from 0 to 65535`);
  let host = m[1] === undefined || m[1] === '' ? '127.0.0.1' : m[1];
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (!isIP(host) && host !== 'localhost') {
    throw new UsageError(
      `--metrics: '${host}' is a name, which could resolve to any interface; spell out the address ` +
        '(127.0.0.1 for this host only, 0.0.0.0 for every interface)',
    );
  }
  return { host, port };
}

export const isLoopback = (host: string): boolean => LOOPBACK.test(host);

function parse(argv: string[]): RunOptions | 'help' | 'version' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'shared-dir': { type: 'string' },
      socket: { type: 'string' },
      cache: { type: 'string', default: 'auto' },
      virtiofsd: { type: 'string' },
      dialect: { type: 'string', default: 'auto' },
      tag: { type: 'string', default: 'shared' },
      memory: { type: 'string', default: '2G' },
      debug: { type: 'boolean', default: false },
      syslog: { type: 'boolean', default: false },
      metrics: { type: 'string' },
      detach: { type: 'boolean', default: false },
      state: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  const dashdash = argv.indexOf('--');
  const extraArgs = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
  const [command, ...rest] = positionals.slice(0, positionals.length - extraArgs.length);
  if (command !== 'run' && command !== 'stop' && command !== 'status') {
    throw new UsageError(command ? `unknown command '${command}'` : 'missing command: run, stop or status');
  }
  if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}' (extra virtiofsd arguments go after --)`);
  if (command !== 'run' || values.detach) {
    if (!values.state) throw new UsageError(`${command === 'run' ? '--detach' : command} needs --state FILE`);
  } else if (values.state) throw new UsageError('--state FILE goes with --detach');
  if (values.metrics !== undefined && (command !== 'run' || values.detach)) {
    throw new UsageError('--metrics goes with run, without --detach (it serves while the command runs)');
  }
  if (command !== 'run') {
    if (values.detach) throw new UsageError('--detach goes with run');
    return { command, detach: false, state: path.resolve(values.state!) } as RunOptions;
  }
  if (!values['shared-dir']) throw new UsageError('--shared-dir DIR is required');
  if (!values.socket) throw new UsageError('--socket PATH is required');
  if (!['auto', 'rust', 'legacy'].includes(values.dialect))
    throw new UsageError(`--dialect: '${values.dialect}' is not auto, rust or legacy`);
  return {
    command,
    detach: values.detach,
    state: values.state === undefined ? undefined : path.resolve(values.state),
    sharedDir: path.resolve(values['shared-dir']),
    socket: path.resolve(values.socket),
    cache: values.cache as CacheMode,
    virtiofsd: values.virtiofsd,
    dialect: values.dialect as RunOptions['dialect'],
    tag: values.tag,
    memory: values.memory,
    debug: values.debug,
    syslog: values.syslog,
    metrics: values.metrics === undefined ? undefined : parseMetricsAddress(values.metrics),
    extraArgs,
  };
}

/** A word the shell reads as itself: left bare; anything else in single quotes. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * The QEMU options of {@link Virtiofsd.qemuArgs} as shell text to paste after `qemu-system-…`:
 * one option and its value a line, values shell-quoted where needed, lines joined by `\`.
 */
export function formatQemuArgs(args: string[]): string {
  const lines: string[] = [];
  for (let i = 0; i < args.length; i += 2) lines.push(`${args[i]} ${shellQuote(args[i + 1])}`);
  return `${lines.join(' \\\n  ')}\n`;
}

function makeLogger(): Logger {
  // Logs go to stderr, so that stdout carries only the QEMU options.
  if (process.stderr.isTTY) return pino(pinoPretty({ destination: 2, sync: true }));
  return pino(pino.destination({ dest: 2, sync: true }));
}

async function run(opts: RunOptions): Promise<number> {
  const logger = makeLogger();
  const daemon = new Virtiofsd({
    path: opts.virtiofsd,
    socketPath: opts.socket,
    sourcePath: opts.sharedDir,
    cache: opts.cache,
    dialect: opts.dialect,
    debug: opts.debug,
    syslog: opts.syslog,
    extraArgs: opts.extraArgs,
    logger,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 3000,
    lifetime: opts.detach ? 'survive' : 'manager',
  });
  // Before anything starts: a bad --tag or --memory is bad usage, and nothing should run for it.
  let qemu: string[];
  try {
    qemu = daemon.qemuArgs({ tag: opts.tag, memory: opts.memory });
  } catch (err) {
    process.stderr.write(`virtiofs-daemon: ${cliMessage(err)}\n`);
    const option = (err as { option?: unknown }).option;
    return option === 'tag' || option === 'memory' ? 2 : 1;
  }

  if (opts.detach) {
    try {
      await runDetached(daemon, opts.state!, logger);
    } catch (err) {
      // One line that names what is wrong and the fix, as for every other failure of the CLI.
      logger.debug({ err }, 'virtiofsd did not start');
      process.stderr.write(`virtiofs-daemon: ${cliMessage(err)}\n`);
      return 1;
    }
    process.stdout.write(formatQemuArgs(qemu));
    return 0;
  }

  let server: http.Server | undefined;
  if (opts.metrics) {
    try {
      server = await serveMetrics(daemon, opts.metrics, opts.tag, logger);
    } catch (err) {
      process.stderr.write(`virtiofs-daemon: --metrics: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
  }
  try {
    return await runUntilQuit(daemon, opts, qemu, logger);
  } finally {
    server?.close();
  }
}

/**
 * Serve GET /metrics (the daemon's, see metrics.ts) at `address` until closed. Rejects when
 * prom-client is missing or the address cannot be bound, before the daemon is started.
 */
async function serveMetrics(
  daemon: Virtiofsd,
  address: MetricsAddress,
  id: string,
  logger: Logger,
): Promise<http.Server> {
  const registry = new (loadPromClient().Registry)();
  daemonMetrics({ registry }).track(daemon, { id });
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        logger.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref(); // the daemon keeps the command alive, not the scrapes
  const bound = server.address() as { address: string; port: number };
  const url = `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}/metrics`;
  if (isLoopback(address.host)) logger.info({ url }, 'serving metrics');
  else logger.warn({ url }, 'serving metrics on a non-loopback address: anyone who reaches it can read them');
  return server;
}

/** Start the daemon, print the QEMU options, wait until it quits (SIGINT/SIGTERM stop it). */
async function runUntilQuit(daemon: Virtiofsd, opts: RunOptions, qemu: string[], logger: Logger): Promise<number> {
  let quit!: (exit: DaemonExit) => void;
  const quitted = new Promise<DaemonExit>((resolve) => (quit = resolve));
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'stopping virtiofsd');
    stopping ??= daemon.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const pid = await daemon.start(quit);
    logger.info(
      { daemonPid: pid, socket: opts.socket, sharedDir: opts.sharedDir },
      'virtiofsd is ready; attach QEMU with:',
    );
    process.stdout.write(formatQemuArgs(qemu));
  } catch (err) {
    logger.debug({ err }, 'virtiofsd did not start');
    process.stderr.write(`virtiofs-daemon: ${cliMessage(err)}\n`);
    return 1;
  }

  const exit = await quitted;
  await stopping;
  if (exit.requested) return 0;
  logger.warn({ ...exit }, 'virtiofsd quit by itself');
  if (exit.signal) return 128 + (constants.signals[exit.signal] ?? 0);
  return exit.code ?? 1;
}

async function main(): Promise<void> {
  let opts: RunOptions | 'help' | 'version';
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? `unknown option ${/'[^']*'/.exec((err as Error).message)?.[0] ?? ''}`
        : err instanceof UsageError || code?.startsWith('ERR_PARSE_ARGS')
          ? (err as Error).message.split('\n')[0]
          : String(err);
    // One line: what is wrong and where the usage is, not the whole usage.
    process.stderr.write(`virtiofs-daemon: ${message}; see virtiofs-daemon --help\n`);
    process.exitCode = 2;
    return;
  }
  if (opts === 'help' || opts === 'version') {
    process.stdout.write(`${opts === 'help' ? USAGE : version()}\n`);
    return;
  }
  try {
    if (opts.command === 'stop') process.exitCode = await stopDetached(opts.state!, makeLogger());
    else if (opts.command === 'status') process.exitCode = statusDetached(opts.state!, process.stdout);
    else process.exitCode = await run(opts);
    // A detached daemon is left running: its watch and output pipe must not hold us here.
    if (opts.detach) process.exit();
  } catch (err) {
    process.stderr.write(`virtiofs-daemon: ${cliMessage(err)}\n`);
    process.exitCode = 1;
  }
}

void main();

/**
 * Prometheus metrics of the daemons, with prom-client (an optional peer dependency: loading
 * this package never loads it; daemonMetrics() does, and says how to install it when it is
 * missing).
 *
 * ```js
 * const { Registry } = require('prom-client');
 * const registry = new Registry();
 * const metrics = daemonMetrics({ registry });
 * metrics.track(daemon, { id: 'vm-42' }); // before start(): its start is counted and timed
 * await daemon.start();
 * // GET /metrics: res.end(await registry.metrics())
 * ```
 *
 * Per-daemon gauges are read lazily, when the registry is scraped (prom-client's collect()):
 * one batched stats() sweep of every tracked daemon per scrape (see process-stats.ts), and for
 * nydusd its own API counters. A daemon that ended leaves them; the counters and histograms
 * that the lifecycle feeds (through daemon.ts's observer point) stay, labelled by kind and
 * dialect only, so that their series do not grow with every VM ever started.
 */
import type * as PromClient from 'prom-client';
import { Daemon, daemonDialect, observeDaemon, type DaemonEvent } from '../process/daemon.js';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError, VirtiofsDaemonError } from '../common/errors.js';
import { NYDUS_STATS_FOPS, type NydusFsMetrics } from '../nydusd/nydus-client.js';
import { Nydusd } from '../nydusd/nydusd.js';
import type { Virtiofsd } from '../virtiofsd/virtiofsd.js';
import type { DaemonStats } from '../process/process-stats.js';
import { requireOptionsObject, readOptions, requireTimeout } from '../common/options.js';
import { requireString } from '../common/validate.js';

/** What daemonMetrics() needs of a registry: prom-client's `Registry` (or its global `register`). */
export interface MetricsRegistry {
  /** Add a metric, as prom-client's `Registry.registerMetric`; daemonMetrics() calls it for each of its families. */
  registerMetric(metric: never): void;
  /** Remove the metric `name`, as prom-client's `Registry.removeSingleMetric`; {@link DaemonMetrics.close} calls it. */
  removeSingleMetric(name: string): void;
}

/** Options of {@link daemonMetrics}. */
export interface DaemonMetricsOptions {
  /** The prom-client registry to register the metrics on (`new Registry()`, or prom-client's `register`). */
  registry: MetricsRegistry;
  /**
   * Prefix of every metric name.
   * @default 'virtiofs_daemon_'
   */
  prefix?: string;
  /**
   * Upper bounds of the start→ready and stop duration histograms' buckets, in seconds.
   * @default [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  buckets?: number[];
  /**
   * How long a scrape waits for each tracked nydusd's API (its own counters), in ms; a nydusd
   * that does not answer in time is left out of that scrape (and counted in scrape_errors_total).
   * @default 2000
   */
  nydusdTimeoutMs?: number;
}

/** What {@link DaemonMetrics.track} takes besides the daemon. */
export interface TrackOptions {
  /** The `id` label of the daemon's series (a VM name, a sandbox id): yours to choose. */
  id: string;
}

/** The metrics of {@link daemonMetrics}. */
export interface DaemonMetrics {
  /**
   * Follow `daemon` (a {@link Virtiofsd} or {@link Nydusd}) under the label `id`: its gauges
   * while it runs, its lifecycle in the counters and histograms. Track it before start() to
   * count its start (and its failure) and time it. It leaves on its own once it has ended
   * (exited, or its start failed); track it again for a later start. Tracking it again
   * replaces its `id`. Returns the function that stops following it. Throws an
   * {@link InvalidOptionError} for anything but a Virtiofsd or Nydusd, or an `id` that is not a
   * non-empty string.
   */
  track(daemon: Virtiofsd | Nydusd, options: TrackOptions): () => void;
  /** Stop following every daemon and remove every metric from the registry. */
  close(): void;
}

const DEFAULT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * prom-client, loaded on first use; `ERR_PROM_CLIENT_MISSING`, saying how to get it, when it is
 * not installed. Internal (the CLI's --metrics uses it too).
 */
export function loadPromClient(): typeof PromClient {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer dependency, loaded only when asked for
    return require('prom-client') as typeof PromClient;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && /['"]prom-client['"]/.test(e.message)) {
      throw new VirtiofsDaemonError(
        'ERR_PROM_CLIENT_MISSING',
        "daemonMetrics() needs prom-client, an optional peer dependency of virtiofs-daemon that is not installed: run 'npm install prom-client'",
        { cause: err },
      );
    }
    throw err;
  }
}

interface Entry {
  daemon: Daemon;
  id: string;
  /** It ended: out of the gauges, kept only until its stop() reports. */
  ended: boolean;
  unobserve: () => void;
}

type Labels = Record<string, string>;

/**
 * Register the daemons' metrics on `options.registry` (see the module comment for the
 * families) and return the handle that tracks daemons. Throws `ERR_PROM_CLIENT_MISSING` when
 * prom-client is not installed, an {@link InvalidOptionError} for a bad option, and
 * prom-client's own error when a metric of the same name is already registered there.
 */
export function daemonMetrics(options: DaemonMetricsOptions): DaemonMetrics {
  const o = readOptions(requireOptionsObject('daemonMetrics', options), [
    'registry',
    'prefix',
    'buckets',
    'nydusdTimeoutMs',
  ]);
  const registry = o.registry as MetricsRegistry;
  if (
    registry === null ||
    typeof registry !== 'object' ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.removeSingleMetric !== 'function'
  ) {
    throw new InvalidOptionError(
      'registry',
      `${describeValue(registry)} is not a prom-client registry; pass new (require('prom-client').Registry)() or its register`,
    );
  }
  const prefix = o.prefix === undefined ? 'virtiofs_daemon_' : requireString('prefix', o.prefix);
  if (!METRIC_NAME.test(`${prefix}x`)) {
    throw new InvalidOptionError('prefix', `'${prefix}' cannot start a metric name; use letters, digits, _ and :`);
  }
  const buckets = o.buckets === undefined ? DEFAULT_BUCKETS : requireBuckets(o.buckets);
  const nydusdTimeoutMs = requireTimeout('nydusdTimeoutMs', o.nydusdTimeoutMs, 2000);
  const prom = loadPromClient();
  return new Metrics(prom, registry, prefix, buckets, nydusdTimeoutMs);
}

function requireBuckets(value: unknown): number[] {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((b, i) => typeof b === 'number' && b > 0 && Number.isFinite(b) && (i === 0 || b > value[i - 1]))
  ) {
    throw new InvalidOptionError(
      'buckets',
      `${describeValue(value)} is not a list of bucket bounds; use increasing positive numbers of seconds`,
    );
  }
  return [...(value as number[])];
}

class Metrics implements DaemonMetrics {
  private readonly tracked = new Map<Daemon, Entry>();
  private readonly names: string[] = [];
  private sweep: Promise<[Entry, DaemonStats][]> | undefined;
  private nydusSweep: Promise<[Entry, { mountpoint: string; metrics: NydusFsMetrics }[]][]> | undefined;
  private readonly starts: PromClient.Counter;
  private readonly startFailures: PromClient.Counter;
  private readonly exits: PromClient.Counter;
  private readonly scrapeErrors: PromClient.Counter;
  private readonly startDuration: PromClient.Histogram;
  private readonly stopDuration: PromClient.Histogram;

  constructor(
    private readonly prom: typeof PromClient,
    private readonly registry: MetricsRegistry,
    private readonly prefix: string,
    buckets: number[],
    private readonly nydusdTimeoutMs: number,
  ) {
    const perDaemon = ['kind', 'dialect', 'id'];
    /** A gauge (or counter) of every running tracked daemon, read from one sweep per scrape. */
    const gauge = (name: string, help: string, value: (s: DaemonStats) => number, counter = false): void =>
      this.lazy(counter ? 'counter' : 'gauge', name, help, perDaemon, async (put) => {
        for (const [entry, stats] of await this.stats()) put(this.labels(entry), value(stats));
      });
    gauge('open_fds', 'Open file descriptors of the daemon and its sandbox processes.', (s) => s.openFds);
    gauge('fd_limit', 'RLIMIT_NOFILE soft limit of the daemon process that holds the most fds.', (s) => s.fdLimit);
    gauge('resident_memory_bytes', 'Resident memory of the daemon and its sandbox processes.', (s) => s.rssBytes);
    gauge(
      'cpu_seconds_total',
      "CPU time of the daemon: its cgroup's usage_usec when it has a cgroup, else the user+system time of its processes.",
      (s) => (s.cpuUsageUsec ?? s.cpuTimeUsec) / 1e6,
      true,
    );
    gauge('threads', 'Threads of the daemon and its sandbox processes.', (s) => s.threads);

    const counter = (name: string, help: string, labelNames: string[]): PromClient.Counter =>
      this.register(new prom.Counter({ name: this.name(name), help, labelNames, registers: [] }));
    const histogram = (name: string, help: string): PromClient.Histogram =>
      this.register(
        new prom.Histogram({ name: this.name(name), help, labelNames: ['kind', 'dialect'], buckets, registers: [] }),
      );
    this.starts = counter('starts_total', 'Daemon starts that became ready.', ['kind', 'dialect']);
    this.startFailures = counter('start_failures_total', 'Daemon starts that failed, by error code.', ['kind', 'code']);
    this.exits = counter(
      'exits_total',
      'Daemons that ended after a start: requested (our stop) or not, by signal or exit code.',
      ['kind', 'dialect', 'requested', 'signal', 'code'],
    );
    this.scrapeErrors = counter(
      'scrape_errors_total',
      'Daemons left out of a scrape because they could not be read, by error code.',
      ['kind', 'code'],
    );
    this.startDuration = histogram('start_duration_seconds', 'From start() to the daemon being ready.');
    this.stopDuration = histogram(
      'stop_duration_seconds',
      'From stop() to the daemon being reaped and its group empty.',
    );
    this.nydusdFamilies();
  }

  track(daemon: Daemon, options: TrackOptions): () => void {
    if (!(daemon instanceof Daemon)) {
      throw new InvalidOptionError('daemon', `${describeValue(daemon)} is not a Virtiofsd or a Nydusd`);
    }
    const { id } = readOptions(requireOptionsObject('track', options), ['id']);
    const label = requireString('id', id);
    this.untrack(daemon);
    const entry: Entry = { daemon, id: label, ended: false, unobserve: () => {} };
    entry.unobserve = observeDaemon(daemon, (event) => this.observe(entry, event));
    this.tracked.set(daemon, entry);
    return () => {
      if (this.tracked.get(daemon) === entry) this.untrack(daemon);
    };
  }

  close(): void {
    for (const daemon of [...this.tracked.keys()]) this.untrack(daemon);
    for (const name of this.names) this.registry.removeSingleMetric(name);
    this.names.length = 0;
  }

  private untrack(daemon: Daemon): void {
    const entry = this.tracked.get(daemon);
    if (!entry) return;
    entry.unobserve();
    this.tracked.delete(daemon);
  }

  private observe(entry: Entry, event: DaemonEvent): void {
    const kind = entry.daemon.kind;
    switch (event.type) {
      case 'started':
        entry.ended = false;
        this.starts.inc({ kind, dialect: event.dialect });
        this.startDuration.observe({ kind, dialect: event.dialect }, event.seconds);
        break;
      case 'start-failed':
        this.startFailures.inc({ kind, code: event.code });
        this.untrack(entry.daemon);
        break;
      case 'exited': {
        const { exit } = event;
        this.exits.inc({
          kind,
          dialect: event.dialect,
          requested: String(exit.requested),
          signal: exit.signal ?? '',
          code: exit.code === null ? '' : String(exit.code),
        });
        entry.ended = true;
        // Our stop() reports once the exit has been: wait for it to time the stop.
        if (!exit.requested) this.untrack(entry.daemon);
        break;
      }
      case 'stopped':
        this.stopDuration.observe({ kind, dialect: event.dialect }, event.seconds);
        if (entry.ended) this.untrack(entry.daemon);
        break;
    }
  }

  private name(suffix: string): string {
    return `${this.prefix}${suffix}`;
  }

  /** Register `metric` (made with `registers: []`, so with no registry yet) on ours. */
  private register<M extends PromClient.Metric>(metric: M): M {
    this.registry.registerMetric(metric as never);
    this.names.push((metric as unknown as { name: string }).name);
    return metric;
  }

  private labels(entry: Entry): Labels {
    return { kind: entry.daemon.kind, dialect: daemonDialect(entry.daemon), id: entry.id };
  }

  /** The running tracked daemons. */
  private running(): Entry[] {
    return [...this.tracked.values()].filter((e) => !e.ended && e.daemon.pid !== 0);
  }

  /** One stats() sweep of every running tracked daemon, shared by the collects of one scrape. */
  private stats(): Promise<[Entry, DaemonStats][]> {
    if (!this.sweep) {
      const entries = this.running();
      const sweep = Promise.all(
        entries.map((e) =>
          e.daemon.stats().then(
            (s): [Entry, DaemonStats] | null => [e, s],
            (err: unknown) => {
              const code = (err as { code?: unknown })?.code;
              // Ended between the list and the read: it is simply gone.
              if (code !== 'ERR_DAEMON_NOT_RUNNING') {
                this.scrapeErrors.inc({ kind: e.daemon.kind, code: typeof code === 'string' ? code : 'ERR_UNKNOWN' });
              }
              return null;
            },
          ),
        ),
      ).then((rows) => rows.filter((r): r is [Entry, DaemonStats] => r !== null));
      this.sweep = sweep;
      // Every collect of a scrape is started in the same tick: the next scrape reads anew.
      void sweep.finally(() => {
        if (this.sweep === sweep) this.sweep = undefined;
      });
    }
    return this.sweep;
  }

  /** nydusd's own counters (GET /api/v1/metrics of each RAFS mount), one sweep per scrape. */
  private nydusdStats(): Promise<[Entry, { mountpoint: string; metrics: NydusFsMetrics }[]][]> {
    if (!this.nydusSweep) {
      const entries = this.running().filter((e) => e.daemon instanceof Nydusd);
      const sweep = Promise.all(
        entries.map((e) =>
          (e.daemon as Nydusd).fsMetrics({ timeoutMs: this.nydusdTimeoutMs }).then(
            (m): [Entry, { mountpoint: string; metrics: NydusFsMetrics }[]] => [e, m],
            (err: unknown) => {
              const code = (err as { code?: unknown })?.code;
              if (code !== 'ERR_DAEMON_NOT_RUNNING') {
                this.scrapeErrors.inc({ kind: 'nydusd', code: typeof code === 'string' ? code : 'ERR_UNKNOWN' });
              }
              return [e, []] as [Entry, { mountpoint: string; metrics: NydusFsMetrics }[]];
            },
          ),
        ),
      );
      this.nydusSweep = sweep;
      void sweep.finally(() => {
        if (this.nydusSweep === sweep) this.nydusSweep = undefined;
      });
    }
    return this.nydusSweep;
  }

  /**
   * Register a metric whose values are read at each scrape: `fill` puts each series' labels and
   * value; the metric is reset and refilled once they are all in.
   */
  private lazy(
    type: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: string[],
    fill: (put: (labels: Labels, value: number) => void) => Promise<void>,
  ): void {
    // prom-client calls collect() with the metric as `this`.
    const prom = this.prom;
    async function collect(this: PromClient.Gauge | PromClient.Counter): Promise<void> {
      const rows: [Labels, number][] = [];
      await fill((labels, value) => rows.push([labels, value]));
      this.reset();
      for (const [labels, value] of rows) {
        if (this instanceof prom.Counter) this.inc(labels, value);
        else this.set(labels, value);
      }
    }
    const config = { name: this.name(name), help, labelNames, registers: [], collect };
    this.register(type === 'counter' ? new prom.Counter(config) : new prom.Gauge(config));
  }

  /** nydusd's FsIoStats, per tracked nydusd and RAFS mountpoint. */
  private nydusdFamilies(): void {
    const family = (
      name: string,
      help: string,
      type: 'counter' | 'gauge',
      rows: (m: NydusFsMetrics) => [Labels, number][],
      byFop = false,
    ): void =>
      this.lazy(
        type,
        `nydusd_${name}`,
        help,
        byFop ? ['id', 'mountpoint', 'fop'] : ['id', 'mountpoint'],
        async (put) => {
          for (const [entry, mounts] of await this.nydusdStats()) {
            for (const { mountpoint, metrics } of mounts) {
              for (const [extra, value] of rows(metrics)) put({ id: entry.id, mountpoint, ...extra }, value);
            }
          }
        },
      );
    const perFop = (values: number[], scale = 1): [Labels, number][] =>
      NYDUS_STATS_FOPS.map((fop, i) => [{ fop }, (values[i] ?? 0) / scale]);
    family('read_bytes_total', "Bytes read from the RAFS filesystem (nydusd's data_read).", 'counter', (m) => [
      [{}, m.data_read],
    ]);
    family('open_files', "Files of the RAFS filesystem open now (nydusd's nr_opens).", 'gauge', (m) => [
      [{}, m.nr_opens],
    ]);
    family(
      'fop_hits_total',
      "Successful operations on the RAFS filesystem (nydusd's fop_hits).",
      'counter',
      (m) => perFop(m.fop_hits),
      true,
    );
    family(
      'fop_errors_total',
      "Failed operations on the RAFS filesystem (nydusd's fop_errors).",
      'counter',
      (m) => perFop(m.fop_errors),
      true,
    );
    family(
      'fop_latency_seconds_total',
      "Time spent in operations on the RAFS filesystem (nydusd's fop_cumulative_latency_total).",
      'counter',
      (m) => perFop(m.fop_cumulative_latency_total, 1e6),
      true,
    );
  }
}

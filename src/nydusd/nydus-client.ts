/**
 * A small client for nydusd's administration API (v1), spoken over its unix socket
 * (`--apisock`). Only what a virtio-fs host needs: daemon info (readiness), mount, umount.
 *
 * What it does for the caller, following the server code (nydus-api + dbs-uhttp):
 * - percent-encodes the `mountpoint` query on every byte outside `A-Z a-z 0-9 - . _ ~`, so
 *   `+`, `&`, `#`, `%`, spaces and UTF-8 arrive byte-exact (nydusd form-decodes the query:
 *   a raw `+` would become a space, a raw `#` would cut the value, raw `"<>`/non-ASCII are 400);
 * - sends bodies with `Content-Length` (nydusd reads bodies by Content-Length only; a chunked
 *   body is seen as no body and answered 400), and `DELETE` with no body at all;
 * - refuses, before sending, what nydusd would refuse anyway: request lines over 1022 bytes,
 *   bodies over 51200 bytes (dbs-uhttp limits), NUL bytes (a NUL in a passthrough_fs source
 *   makes nydusd panic, and nydusd is built with panic=abort);
 * - treats 200 and 204 as success, and turns everything else into a {@link NydusApiError}
 *   that keeps the HTTP status, the server's `code` and `message` (or its raw body, capped).
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { InvalidOptionError, NydusApiError } from '../common/errors.js';
import { describeValue } from '../common/describe.js';
import { peerCredentials } from '../process/native.js';
import {
  readOptions,
  rejectUnknownOptions,
  requireBoolean,
  requireOptionsObject,
  requireTimeout,
} from '../common/options.js';
import { requireArgs, requireSocketPath } from '../common/validate.js';

/** Root of nydusd's v1 API. */
export const NYDUS_API_V1_ROOT = '/api/v1';
/**
 * Longest request line nydusd accepts, in bytes without the CRLF. dbs-uhttp parses each line
 * in a 1024-byte buffer; a longer line is answered `400` by the HTTP layer.
 */
export const NYDUS_API_MAX_REQUEST_LINE = 1022;
/** Largest request body nydusd accepts, in bytes (dbs-uhttp `MAX_PAYLOAD_SIZE`). */
export const NYDUS_API_MAX_BODY_BYTES = 51200;
/** How much of a non-JSON error body is kept in {@link NydusApiError.apiMessage}, in bytes. */
export const NYDUS_API_ERROR_BODY_CAP = 4096;

/** Working state of nydusd, as `GET /api/v1/daemon` reports it. */
export type NydusDaemonState = 'INIT' | 'RUNNING' | 'READY' | 'STOPPED' | 'UNKNOWN';

/** Build information of the nydusd binary (`BuildTimeInfo`). */
export interface NydusBuildInfo {
  /** Release, e.g. `v2.2.3`. */
  package_ver: string;
  /** Git commit the binary was built from. */
  git_commit: string;
  /** Build time. */
  build_time: string;
  /** Cargo profile, usually `release`. */
  profile: string;
  /** Compiler version. */
  rustc: string;
}

/** One mounted filesystem, as listed in {@link DaemonInfo.backend_collection}. */
export interface NydusFsBackend {
  /** `Rafs` or `PassthroughFs`. */
  backend_type: 'Rafs' | 'PassthroughFs' | (string & {});
  /** The mountpoint exactly as it was given to `mount()`. */
  mountpoint: string;
  /** When it was mounted, e.g. `2024-05-01 10:00:00.123456789 +00:00:00`. */
  mounted_time: string;
  /** The RAFS configuration without secrets; `null` for passthrough_fs. */
  config: unknown;
}

/** Answer of `GET /api/v1/daemon`. */
export interface DaemonInfo {
  /** Build information. */
  version: NydusBuildInfo;
  /** `--id`, or null. */
  id: string | null;
  /** `--supervisor`, or null. */
  supervisor: string | null;
  /**
   * Working state. In virtiofs mode nydusd opens its API only once it is `RUNNING` (the
   * vhost-user socket is bound then), so anything else means "not ready".
   */
  state: NydusDaemonState | (string & {});
  /** Mounted filesystems keyed by mountpoint (exactly as given), or null. */
  backend_collection: Record<string, NydusFsBackend> | null;
}

/**
 * The counters of one RAFS filesystem (`GET /api/v1/metrics`: nydusd's FsIoStats). The arrays
 * are indexed as {@link NYDUS_STATS_FOPS} (fop_*), by request size (`block_count_read`: <=1K,
 * <=4K, <=16K, <=64K, <=128K, <=512K, <=1M, >1M) and by read latency (`read_latency_dist`).
 */
export interface NydusFsMetrics {
  /** The filesystem's id: its mountpoint. */
  id: string;
  /** Files open now. */
  nr_opens: number;
  /** Bytes read from the filesystem. */
  data_read: number;
  /**
   * Read requests counted by size, 8 buckets: ≤1K, ≤4K, ≤16K, ≤64K, ≤128K, ≤512K, ≤1M, >1M
   * (older nydusd releases fill the first five only, the fifth counting every read over 64K).
   */
  block_count_read: number[];
  /** Successful operations, by {@link NYDUS_STATS_FOPS}. */
  fop_hits: number[];
  /** Failed operations, by {@link NYDUS_STATS_FOPS}. */
  fop_errors: number[];
  /** Time spent in each operation, in microseconds, by {@link NYDUS_STATS_FOPS}. */
  fop_cumulative_latency_total: number[];
  /**
   * Operations counted by latency, 8 buckets: ≤200µs, ≤1ms, ≤20ms, ≤50ms, ≤500ms, ≤1s, ≤2s,
   * >2s (older nydusd releases: ≤1ms, ≤20ms, ≤50ms, ≤100ms, ≤500ms, ≤1s, ≤2s, >2s). Counted only while
   * `measure_latency` is on.
   */
  read_latency_dist: number[];
  /** Whether nydusd also counts per file (the RAFS configuration's `iostats_files`; off by default). */
  files_account_enabled: boolean;
  /** Whether nydusd records each file's access pattern (the RAFS configuration's `access_pattern`). */
  access_pattern_enabled: boolean;
  /** Whether nydusd records which files were read lately (the RAFS configuration's `latest_read_files`). */
  record_latest_read_files_enabled: boolean;
  /** Whether latencies are measured (`read_latency_dist`, `fop_cumulative_latency_total`); nydusd turns it on. */
  measure_latency: boolean;
}

/** The operations nydusd counts, in the order of its `StatsFop` (the index of the fop_* arrays). */
export const NYDUS_STATS_FOPS = [
  'getattr',
  'readlink',
  'open',
  'release',
  'read',
  'statfs',
  'getxattr',
  'listxattr',
  'opendir',
  'lookup',
  'readdir',
  'readdirplus',
  'access',
  'forget',
  'batch_forget',
] as const;

/** What to mount (nydusd's `MountCmd`). */
export interface NydusMountCmd {
  /** `rafs` for a RAFS image, `passthrough_fs` to share a host directory. */
  fs_type: 'rafs' | 'passthrough_fs';
  /** The RAFS bootstrap (metadata) file, or the host directory for passthrough_fs. */
  source: string;
  /** RAFS configuration as JSON text; `''` for passthrough_fs. */
  config: string;
  /** Absolute paths inside the image to prefetch (RAFS). */
  prefetch_files?: string[];
}

const CLIENT_OPTION_KEYS = ['timeoutMs', 'maxResponseBytes', 'keepAlive', 'peerPid'] as const;

/** Options of {@link NydusClient}. */
export interface NydusClientOptions {
  /**
   * Time allowed for one request, from connecting to the last byte of the answer, in
   * milliseconds. Past it the request is abandoned and rejects with `ERR_NYDUS_API_TIMEOUT`.
   * nydusd serves requests one at a time, so a slow mount delays every other request.
   *
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * Largest answer body accepted, in bytes. A longer answer is cut off (the connection is
   * destroyed) and the request rejects with `ERR_NYDUS_API_RESPONSE`.
   *
   * @default 1048576
   */
  maxResponseBytes?: number;
  /**
   * Keep one connection open between requests instead of connecting for each. nydusd accepts
   * at most 10 connections at a time (the 11th is answered 503 and closed), so a client never
   * holds more than one. Call {@link NydusClient.close} when done, or the open connection keeps
   * the event loop alive. When a kept-alive connection turns out to be dead (nydusd restarted at
   * the same path), `daemonInfo()` is retried once on a new connection, with a fresh `timeoutMs`;
   * mount and umount are never retried.
   *
   * @default false
   */
  keepAlive?: boolean;
  /**
   * The pid of the nydusd that must be serving the socket. Each connection is checked before a
   * byte is sent: the kernel's record of who listens (SO_PEERCRED) must be this process, else
   * the connection is closed and the request rejects with `ERR_NYDUS_API_PEER`. Whoever can
   * write the socket's directory can replace the file with a socket of their own; this keeps a
   * RAFS configuration (registry credentials included) from going to them.
   * @default none (any listener is talked to)
   */
  peerPid?: number;
}

/**
 * An agent whose connections are proven to reach process `peerPid` (SO_PEERCRED) before the
 * request is written: Node's agents accept a socket handed over later, through the callback.
 */
class PeerCheckingAgent extends http.Agent {
  constructor(
    private readonly socketPath: string,
    private readonly peerPid: number,
    options?: http.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(
    _options: http.ClientRequestArgs,
    oncreate?: (err: Error | null, socket: net.Socket) => void,
  ): null {
    if (!oncreate) throw new Error('PeerCheckingAgent hands its sockets over through the callback');
    const socket = net.createConnection({ path: this.socketPath });
    const failed = (err: Error): void => oncreate(err, socket);
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      let problem: NydusApiError | undefined;
      try {
        const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
        const peer = peerCredentials(fd);
        if (peer.pid !== this.peerPid) {
          problem = new NydusApiError(
            'ERR_NYDUS_API_PEER',
            `the nydusd API socket ${this.socketPath} is served by pid ${peer.pid} (uid ${peer.uid}), not by nydusd ` +
              `(pid ${this.peerPid}): someone else listens there (was the socket file replaced?). Nothing was sent`,
          );
        }
      } catch (err) {
        problem = new NydusApiError(
          'ERR_NYDUS_API_PEER',
          `cannot tell who serves the nydusd API socket ${this.socketPath} (${(err as Error).message}); nothing was sent`,
          {},
          { cause: err },
        );
      }
      if (problem) socket.destroy();
      oncreate(problem ?? null, socket);
    });
    // Handed over through oncreate once proven: returning nothing makes the agent wait for it.
    return null;
  }
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** For messages: the mountpoint concerned, as given. */
  mountpoint?: string;
  body?: Buffer;
  /** Safe to send again when a reused keep-alive connection turns out to be dead. */
  idempotent: boolean;
}

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Percent-encode every UTF-8 byte outside `A-Z a-z 0-9 - . _ ~` (including `/`). */
export function encodeQueryValue(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const unreserved =
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      (b >= 0x30 && b <= 0x39) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Check a string that nydusd will take as a path or name. */
function checkText(option: string, value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string') {
    throw new InvalidOptionError(option, `must be a string (${what}), got ${value === null ? 'null' : typeof value}`);
  }
  if (value.includes('\0')) {
    throw new InvalidOptionError(
      option,
      `contains a NUL byte; no path can contain one, and nydusd aborts on a passthrough_fs source that does`,
    );
  }
  if (LONE_SURROGATE.test(value)) {
    throw new InvalidOptionError(
      option,
      'contains an unpaired UTF-16 surrogate, which has no UTF-8 form; nydusd would receive U+FFFD instead',
    );
  }
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Client of one nydusd's administration API.
 *
 * ```ts
 * const api = new NydusClient('/run/nydusd/api.sock');
 * const info = await api.daemonInfo();            // state === 'RUNNING' once ready
 * await api.mount('/containers', { fs_type: 'passthrough_fs', source: '/run/share', config: '' });
 * await api.umount('/containers');
 * api.close();
 * ```
 *
 * Every method rejects with a {@link NydusApiError}:
 * - `ERR_NYDUS_API`: nydusd answered with an error status (`status`, `apiCode`, `apiMessage`);
 * - `ERR_NYDUS_API_UNREACHABLE`: nothing to connect to at the socket path (`cause` has the errno);
 * - `ERR_NYDUS_API_TIMEOUT`: no complete answer within `timeoutMs`;
 * - `ERR_NYDUS_API_RESPONSE`: an answer that is too large, cut short, not HTTP, or not the
 *   expected JSON.
 * Arguments nydusd could never accept reject with an {@link InvalidOptionError} before anything
 * is sent.
 */
export class NydusClient {
  /** The API socket this client talks to. */
  readonly apiSockPath: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly agent: http.Agent | undefined;
  private readonly peerPid: number | undefined;
  private readonly inFlight = new Set<http.ClientRequest>();
  private closed = false;

  /**
   * @param apiSockPath Path of nydusd's API socket (its `--apisock`), at most 107 bytes.
   * @param options See {@link NydusClientOptions}.
   */
  constructor(apiSockPath: string, options: NydusClientOptions = {}) {
    requireSocketPath('apiSockPath', apiSockPath);
    const given = options === undefined ? {} : requireOptionsObject('new NydusClient', options);
    rejectUnknownOptions('new NydusClient()', given, CLIENT_OPTION_KEYS, { hints: { timeout: 'timeoutMs' } });
    const o = readOptions(given, CLIENT_OPTION_KEYS);
    const timeoutMs = requireTimeout('timeoutMs', o.timeoutMs, 5000);
    const maxResponseBytes = o.maxResponseBytes ?? 1024 * 1024;
    if (typeof maxResponseBytes !== 'number' || !Number.isSafeInteger(maxResponseBytes) || maxResponseBytes <= 0) {
      throw new InvalidOptionError(
        'maxResponseBytes',
        `must be a positive integer, got ${describeValue(maxResponseBytes)}`,
      );
    }
    const keepAlive = requireBoolean('keepAlive', o.keepAlive, false);
    const peerPid = o.peerPid;
    if (peerPid !== undefined && (!Number.isSafeInteger(peerPid) || (peerPid as number) < 1)) {
      throw new InvalidOptionError('peerPid', `must be a pid (a positive integer), got ${describeValue(peerPid)}`);
    }
    this.apiSockPath = apiSockPath;
    this.timeoutMs = timeoutMs;
    this.maxResponseBytes = maxResponseBytes;
    this.peerPid = peerPid as number | undefined;
    this.agent = keepAlive ? this.newAgent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 }) : undefined;
  }

  /** An agent for this client's connections, checking the peer when `peerPid` was given. */
  private newAgent(options?: http.AgentOptions): http.Agent {
    return this.peerPid === undefined
      ? new http.Agent(options)
      : new PeerCheckingAgent(this.apiSockPath, this.peerPid, options);
  }

  /**
   * `GET /api/v1/daemon`: build information, state and mounted filesystems.
   * Poll it until `state === 'RUNNING'` to know that nydusd is ready.
   */
  async daemonInfo(): Promise<DaemonInfo> {
    const spec: RequestSpec = { method: 'GET', path: `${NYDUS_API_V1_ROOT}/daemon`, idempotent: true };
    const answer = await this.send(spec);
    if (answer.status !== 200) throw this.statusError(spec, answer);
    return this.json(spec, answer, (v) => typeof v.state === 'string', 'a DaemonInfo (no "state" string)');
  }

  /**
   * `GET /api/v1/metrics?id=…`: the counters of the RAFS filesystem mounted at `id` (its
   * mountpoint, as given to mount()), or of the only one when `id` is left out; null when
   * nydusd has none there (404 NoCounter: no RAFS there, or several and no id).
   */
  async fsMetrics(id?: string): Promise<NydusFsMetrics | null> {
    if (id !== undefined) checkText('id', id, 'the mountpoint of a RAFS filesystem');
    const query = id === undefined ? '' : `?id=${encodeQueryValue(id)}`;
    const spec: RequestSpec = { method: 'GET', path: `${NYDUS_API_V1_ROOT}/metrics${query}`, idempotent: true };
    const answer = await this.send(spec);
    if (answer.status === 404) return null;
    if (answer.status !== 200) throw this.statusError(spec, answer);
    return this.json(
      spec,
      answer,
      (v) => Array.isArray(v.fop_hits) && typeof v.data_read === 'number',
      'FsIoStats (no "fop_hits" array, or no "data_read" number)',
    );
  }

  /** The JSON object of a 200 answer, when `shape` accepts it; else ERR_NYDUS_API_RESPONSE naming `what`. */
  private json<T>(
    spec: RequestSpec,
    answer: RawAnswer,
    shape: (v: Record<string, unknown>) => boolean,
    what: string,
  ): T {
    let value: unknown;
    try {
      value = JSON.parse(answer.body.toString('utf8'));
    } catch (err) {
      throw new NydusApiError(
        'ERR_NYDUS_API_RESPONSE',
        `${this.describe(spec)} answered 200 with a body that is not JSON: ${quote(this.capped(answer.body))}`,
        { status: answer.status },
        { cause: err },
      );
    }
    if (value === null || typeof value !== 'object' || !shape(value as Record<string, unknown>)) {
      throw new NydusApiError(
        'ERR_NYDUS_API_RESPONSE',
        `${this.describe(spec)} answered 200 with JSON that is not ${what}: ${quote(this.capped(answer.body))}`,
        { status: answer.status },
      );
    }
    return value as T;
  }

  /**
   * `POST /api/v1/mount?mountpoint=…`: mount a RAFS image or a passthrough directory at
   * `mountpoint` inside the virtio-fs device. nydusd answers 500 when something is already
   * mounted there, when the source does not exist, or when the RAFS config does not parse.
   *
   * @param mountpoint Absolute path inside the device, e.g. `/containers` or
   *   `/rafs/<id>/lowerdir`; sent byte-exact whatever characters it holds.
   * @param cmd What to mount.
   */
  async mount(mountpoint: string, cmd: NydusMountCmd): Promise<void> {
    checkText('mountpoint', mountpoint, 'a path inside the virtio-fs device');
    if (cmd === null || typeof cmd !== 'object')
      throw new InvalidOptionError('cmd', 'must be an object { fs_type, source, config }');
    // Read once: what is checked is what is sent.
    const cmdKeys = ['fs_type', 'source', 'config', 'prefetch_files'];
    rejectUnknownOptions('the mount command', cmd, cmdKeys, {
      prefix: 'cmd.',
      hints: { fsType: 'fs_type', prefetchFiles: 'prefetch_files' },
    });
    const c = readOptions(cmd, cmdKeys, 'cmd.');
    checkText('cmd.fs_type', c.fs_type, "'rafs' or 'passthrough_fs'");
    checkText('cmd.source', c.source, 'the RAFS bootstrap or the shared directory');
    checkText('cmd.config', c.config, "JSON text, or '' for passthrough_fs");
    const payload: Record<string, unknown> = { fs_type: c.fs_type, source: c.source, config: c.config };
    if (c.prefetch_files !== undefined) {
      if (!Array.isArray(c.prefetch_files))
        throw new InvalidOptionError('cmd.prefetch_files', 'must be an array of absolute paths');
      const files = requireArgs('cmd.prefetch_files', c.prefetch_files);
      files.forEach((p, i) => checkText(`cmd.prefetch_files[${i}]`, p, 'an absolute path inside the image'));
      payload.prefetch_files = files;
    }
    const body = Buffer.from(JSON.stringify(payload), 'utf8');
    if (body.length > NYDUS_API_MAX_BODY_BYTES) {
      throw new InvalidOptionError(
        'cmd',
        `makes a ${body.length}-byte request body; nydusd's HTTP server rejects bodies over ${NYDUS_API_MAX_BODY_BYTES} bytes (shorten config or prefetch_files)`,
      );
    }
    const spec: RequestSpec = { method: 'POST', path: this.mountPath(mountpoint), mountpoint, body, idempotent: false };
    const answer = await this.send(spec);
    if (answer.status !== 204 && answer.status !== 200) throw this.statusError(spec, answer);
  }

  /**
   * `DELETE /api/v1/mount?mountpoint=…` (no body): unmount what `mount()` mounted there.
   * nydusd answers 500 when nothing is mounted at `mountpoint`.
   *
   * @param mountpoint The mountpoint given to `mount()`, character for character.
   */
  async umount(mountpoint: string): Promise<void> {
    checkText('mountpoint', mountpoint, 'a path inside the virtio-fs device');
    const spec: RequestSpec = { method: 'DELETE', path: this.mountPath(mountpoint), mountpoint, idempotent: false };
    const answer = await this.send(spec);
    if (answer.status !== 204 && answer.status !== 200) throw this.statusError(spec, answer);
  }

  /**
   * Release the kept-alive connection (with `keepAlive: true`). Requests still in flight are
   * aborted and reject with `ERR_NYDUS_API` (status 0); later calls reject the same way.
   * Calling it again does nothing.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const req of this.inFlight) req.destroy(new Error('NydusClient.close() was called'));
    this.agent?.destroy();
  }

  private mountPath(mountpoint: string): string {
    const path = `${NYDUS_API_V1_ROOT}/mount?mountpoint=${encodeQueryValue(mountpoint)}`;
    // Measured with DELETE, the longer of the two methods that carry this path: a path that
    // fits after it fits after POST as well, so mount and umount accept the same mountpoints.
    const lineBytes = `DELETE ${path} HTTP/1.1`.length;
    if (lineBytes > NYDUS_API_MAX_REQUEST_LINE) {
      throw new InvalidOptionError(
        'mountpoint',
        `is too long once percent-encoded (${lineBytes} bytes in the request line; nydusd's HTTP server accepts ${NYDUS_API_MAX_REQUEST_LINE}); non-ASCII characters take 6 to 12 bytes each`,
      );
    }
    return path;
  }

  private describe(spec: RequestSpec): string {
    const what = spec.mountpoint === undefined ? '' : ` for mountpoint ${quote(spec.mountpoint)}`;
    return `nydusd API ${spec.method} ${spec.path.split('?')[0]}${what} (socket ${this.apiSockPath})`;
  }

  /** The first NYDUS_API_ERROR_BODY_CAP bytes of a body, as text. */
  private capped(body: Buffer): string {
    if (body.length <= NYDUS_API_ERROR_BODY_CAP) return body.toString('utf8');
    return `${body.subarray(0, NYDUS_API_ERROR_BODY_CAP).toString('utf8')}… (${body.length} bytes)`;
  }

  private statusError(spec: RequestSpec, answer: RawAnswer): NydusApiError {
    let apiCode: string | undefined;
    let apiMessage: string | undefined;
    try {
      const parsed = JSON.parse(answer.body.toString('utf8')) as unknown;
      if (
        parsed !== null &&
        typeof parsed === 'object' &&
        typeof (parsed as { message?: unknown }).message === 'string'
      ) {
        apiMessage = (parsed as { message: string }).message;
        const code = (parsed as { code?: unknown }).code;
        if (typeof code === 'string') apiCode = code;
      }
    } catch {
      // not JSON: keep the raw text below
    }
    if (apiMessage === undefined && answer.body.length > 0) apiMessage = this.capped(answer.body);
    const server = typeof answer.headers.server === 'string' ? answer.headers.server : undefined;
    const layer =
      server !== undefined && server !== 'Nydus API' ? ` [from ${server}: the request itself could not be parsed]` : '';
    const detail = apiMessage === undefined ? '(empty body)' : apiMessage;
    return new NydusApiError(
      'ERR_NYDUS_API',
      `${this.describe(spec)} failed with HTTP ${answer.status}${apiCode ? ` ${apiCode}` : ''}: ${detail}${layer}`,
      { status: answer.status, apiCode, apiMessage },
    );
  }

  private async send(spec: RequestSpec): Promise<RawAnswer> {
    if (this.closed) {
      throw new NydusApiError('ERR_NYDUS_API', `${this.describe(spec)}: this NydusClient is closed`);
    }
    try {
      return await this.sendOnce(spec);
    } catch (err) {
      // A kept-alive connection may have died with a previous nydusd at the same path.
      if (err instanceof RetryableReuse) return this.sendOnce(spec);
      throw err;
    }
  }

  /**
   * One HTTP exchange: the request, bounded by `timeoutMs` from connecting to the last byte.
   * Rejects with a {@link NydusApiError}, or a {@link RetryableReuse} that {@link send} retries.
   */
  private sendOnce(spec: RequestSpec): Promise<RawAnswer> {
    return new Promise<RawAnswer>((resolve, reject) => {
      const state: ExchangeState = { connected: false, answered: false };
      let settled = false;
      const headers: http.OutgoingHttpHeaders = {};
      if (spec.body) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = spec.body.length;
      }
      const req = http.request({
        socketPath: this.apiSockPath,
        path: spec.path,
        method: spec.method,
        headers,
        // Without keep-alive, a private one-shot agent (Node 20's global agent keeps alive).
        agent: this.agent ?? (this.peerPid === undefined ? false : this.newAgent()),
      });
      this.inFlight.add(req);
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        this.inFlight.delete(req);
        return true;
      };
      const fail = (err: Error): void => {
        if (!settle()) return;
        req.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(
          new NydusApiError(
            'ERR_NYDUS_API_TIMEOUT',
            `${this.describe(spec)} got no complete answer within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);

      req.on('socket', (socket) => {
        if (!socket.connecting) state.connected = true;
        else socket.once('connect', () => (state.connected = true));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!settled) fail(this.classifyRequestError(spec, req, state, err));
      });
      req.on('response', (res) => {
        state.answered = true;
        const status = res.statusCode ?? 0;
        readBody(res, this.maxResponseBytes, () => settled).then(
          (body) => {
            if (!settle()) return;
            // After an error answer the server's parser may be out of step: do not reuse.
            if (this.agent && status >= 400) res.socket?.destroy();
            resolve({ status, headers: res.headers, body });
          },
          (failure: BodyFailure) => fail(this.bodyError(spec, status, failure)),
        );
      });
      req.end(spec.body);
    });
  }

  /** What a request error means, told apart by when it happened and its errno code. */
  private classifyRequestError(
    spec: RequestSpec,
    req: http.ClientRequest & { reusedSocket?: boolean },
    state: ExchangeState,
    err: NodeJS.ErrnoException,
  ): Error {
    if (err instanceof NydusApiError) return err; // the peer check refused the connection
    const code = err.code ?? '';
    const cause = { cause: err };
    if (this.closed) {
      return new NydusApiError(
        'ERR_NYDUS_API',
        `${this.describe(spec)}: aborted, NydusClient.close() was called`,
        {},
        cause,
      );
    }
    if (!state.connected && code in UNREACHABLE) {
      const why = UNREACHABLE[code] || err.message;
      return new NydusApiError(
        'ERR_NYDUS_API_UNREACHABLE',
        `cannot reach nydusd API socket ${this.apiSockPath} (${code}: ${why}) for ${spec.method} ${spec.path.split('?')[0]}`,
        {},
        cause,
      );
    }
    if (!state.answered && spec.idempotent && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')) {
      return new RetryableReuse();
    }
    if (code.startsWith('HPE_')) {
      return new NydusApiError(
        'ERR_NYDUS_API_RESPONSE',
        `${this.describe(spec)}: the answer is not valid HTTP/1.1 (${code})`,
        {},
        cause,
      );
    }
    return new NydusApiError(
      'ERR_NYDUS_API_RESPONSE',
      `${this.describe(spec)}: the connection ended before a complete answer (${code || err.message})`,
      {},
      cause,
    );
  }

  /** The error for an answer whose body could not be read whole. */
  private bodyError(spec: RequestSpec, status: number, failure: BodyFailure): NydusApiError {
    if (failure.kind === 'too-big') {
      const seen = failure.size > this.maxResponseBytes ? `${failure.size} > ` : '';
      return new NydusApiError(
        'ERR_NYDUS_API_RESPONSE',
        `${this.describe(spec)}: the answer (HTTP ${status}) is larger than maxResponseBytes (${seen}${this.maxResponseBytes} bytes)`,
        { status },
      );
    }
    return new NydusApiError(
      'ERR_NYDUS_API_RESPONSE',
      `${this.describe(spec)}: the connection ended in the middle of the answer (HTTP ${status})`,
      { status },
      failure.cause === undefined ? undefined : { cause: failure.cause },
    );
  }
}

/** Where one exchange has got to: what a request error means depends on it. */
interface ExchangeState {
  /** The connection to the socket was made. */
  connected: boolean;
  /** A status line and headers arrived. */
  answered: boolean;
}

/**
 * Connect-time errno codes that mean "there is no nydusd API here", with the explanation to give
 * ('' keeps the system's own message).
 */
const UNREACHABLE: Record<string, string> = {
  ENOENT: 'no such socket: is nydusd running with this --apisock?',
  ECONNREFUSED:
    'the socket file exists but nothing accepts connections on it: nydusd has exited or has not opened its API yet',
  EACCES: 'permission denied on the socket or its directory',
  ENOTDIR: '',
  ENOTSOCK: '',
  ELOOP: '',
  ENAMETOOLONG: '',
};

/** Why an answer's body could not be read whole; {@link NydusClient} turns it into a NydusApiError. */
class BodyFailure extends Error {
  constructor(
    readonly kind: 'too-big' | 'cut-short',
    /** Bytes declared or received so far (`too-big`). */
    readonly size = 0,
    options?: { cause?: unknown },
  ) {
    super(kind, options);
  }
}

/**
 * The whole body of `res`, at most `maxBytes` (a larger one, declared or received, destroys the
 * response). Rejects with a {@link BodyFailure}. `abandoned()` tells when the exchange has already
 * settled (timeout, close), after which incoming data is dropped.
 */
function readBody(res: http.IncomingMessage, maxBytes: number, abandoned: () => boolean): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.destroy();
      reject(new BodyFailure('too-big', declared));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      if (abandoned()) return;
      size += chunk.length;
      if (size > maxBytes) {
        res.destroy();
        reject(new BodyFailure('too-big', size));
        return;
      }
      chunks.push(chunk);
    });
    res.on('error', (err) => reject(new BodyFailure('cut-short', size, { cause: err })));
    res.on('close', () => {
      if (!res.complete) reject(new BodyFailure('cut-short', size));
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** Internal: a request on a reused keep-alive connection failed before any answer. */
class RetryableReuse extends Error {}

/**
 * nydusd's command line and version. The `virtiofs` subcommand exists from nydusd 2.1.0; 1.x and
 * 2.0 (what Kata 2.4 pinned) take one flat command line, where `--sock` means virtio-fs. Both
 * print their version the same way (`nydusd \rVersion: \tv2.2.3\nGit Commit: …`).
 */
import { askVersion } from '../process/daemon-process.js';
import { InvalidOptionError } from '../common/errors.js';
import { checkExtraArgs, type ExtraArgsPolicy } from '../common/extra-args.js';
import { describeValue } from '../common/describe.js';

/** nydusd's `--log-level` values. */
export type NydusdLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
const LOG_LEVELS: readonly NydusdLogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/** A nydusd version, as its `--version` reports it. */
export interface NydusdVersion {
  /** 2 in `v2.2.3`. */
  major: number;
  /** 2 in `v2.1.3`: with `major`, what decides the command line (2.1 and later: `virtiofs`). */
  minor: number;
  /** 3 in `v2.2.3`. */
  patch: number;
  /** What nydusd printed after `Version:`, e.g. `v2.2.3`. */
  text: string;
}

/** The oldest nydusd we drive: 1.0 (the first with the virtio-fs API mount). */
export const MIN_NYDUSD_VERSION = '1.0.0';

/** `virtiofs`: nydusd >= 2.1 (`nydusd virtiofs --sock …`); `flat`: 1.x and 2.0 (`nydusd --sock …`). */
export type NydusdCli = 'virtiofs' | 'flat';

/** Parse a version (`v2.2.3`, `2.1.0-rc.1`, `v2.2.3-12-gabcdef`). */
export function parseNydusdVersion(text: string): NydusdVersion | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: text.trim() };
}

/** The version a caller gave (`2.2.3`, `v2.1.0`), or an {@link InvalidOptionError} for `version`. */
export function requireNydusdVersion(text: unknown): NydusdVersion {
  const v = typeof text === 'string' ? parseNydusdVersion(text) : undefined;
  if (!v) {
    const got = JSON.stringify(text);
    throw new InvalidOptionError(
      'version',
      `${got} is not a nydusd version; write it as 2.2.3 (or leave it unset to ask the binary)`,
    );
  }
  return v;
}

/** Which command line `version` understands; an {@link InvalidOptionError} for one older than 1.0. */
export function nydusdCliFor(version: NydusdVersion): NydusdCli {
  if (version.major < 1) {
    throw new InvalidOptionError(
      'path',
      `nydusd ${version.text} is older than ${MIN_NYDUSD_VERSION}, which this library needs (its API mount of the shared ` +
        'directory); install nydusd 2.1 or later (github.com/dragonflyoss/nydus releases)',
    );
  }
  return version.major > 2 || (version.major === 2 && version.minor >= 1) ? 'virtiofs' : 'flat';
}

const versionCache = new Map<string, Promise<NydusdVersion>>();

/** The version of the nydusd `binary`, from its `--version`; asked once per path, size and mtime. */
export function detectNydusdVersion(binary: string): Promise<NydusdVersion> {
  return askVersion(
    binary,
    versionCache,
    (text) => {
      const m = /^\s*Version:\s*(\S+)/m.exec(text.replace(/\r/g, '\n'));
      return m ? parseNydusdVersion(m[1]) : undefined;
    },
    { what: 'nydusd', option: 'path', hint: 'is it nydusd? (expected a line "Version: v2.x.y")' },
  );
}

/** Everything nydusd's command line depends on. */
export interface NydusdArgsInput {
  /** The vhost-user socket (`--sock`), which nydusd binds itself. */
  sockPath: string;
  /** The HTTP API socket (`--apisock`), which nydusd binds itself. */
  apiSockPath: string;
  /** `--log-level debug`; conflicts with a `logLevel` other than debug. @default false */
  debug?: boolean;
  /** nydusd's log level. @default 'info' */
  logLevel?: NydusdLogLevel;
  /** @default [] */
  extraArgs?: string[];
  /** How far to trust `extraArgs` (see {@link ExtraArgsPolicy}). @default 'verbatim' */
  extraArgsPolicy?: ExtraArgsPolicy;
  /** Which command line to build. @default 'virtiofs' (nydusd >= 2.1) */
  cli?: NydusdCli;
  /**
   * Refused: nydusd has no worker-thread option in virtio-fs mode (`--fuse-threads`, once
   * `--thread-num`, sizes the FUSE server only); prefetch threads are `fs_prefetch.threads_count`
   * in the RAFS configuration passed to `mount`.
   */
  threads?: never;
}

/**
 * nydusd's arguments (after argv[0]). Pure. No `--hybrid-mode`: it panicked in nydusd 2.2.0.
 * - `virtiofs` (>= 2.1): `virtiofs --log-level <l> --apisock <api> --sock <vhost> [extra…]`
 * - `flat` (1.x, 2.0, Kata 2.4): `--log-level <l> --apisock <api> --sock <vhost> [extra…]`
 */
export function buildNydusdArgs(input: NydusdArgsInput): string[] {
  const cli = input.cli ?? 'virtiofs';
  if (cli !== 'virtiofs' && cli !== 'flat')
    throw new InvalidOptionError('cli', `${describeValue(cli)} is not virtiofs or flat`);
  if ((input as { threads?: unknown }).threads !== undefined) {
    throw new InvalidOptionError(
      'threads',
      'nydusd has no worker-thread option in virtio-fs mode (--fuse-threads/--thread-num size the FUSE server only); ' +
        'set prefetch threads as fs_prefetch.threads_count in the RAFS configuration you pass to mount()',
    );
  }
  const level = input.logLevel ?? (input.debug ? 'debug' : 'info');
  if (!LOG_LEVELS.includes(level)) {
    throw new InvalidOptionError('logLevel', `${describeValue(level)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  if (input.debug && level !== 'debug')
    throw new InvalidOptionError('logLevel', `'${level}' contradicts debug: true; set one of them`);
  const extraArgs = input.extraArgs ?? [];
  const table = cli === 'virtiofs' ? 'nydusd-virtiofs' : 'nydusd-flat';
  checkExtraArgs('extraArgs', extraArgs, input.extraArgsPolicy ?? 'verbatim', table);
  const args = ['--log-level', level, '--apisock', input.apiSockPath, '--sock', input.sockPath, ...extraArgs];
  return cli === 'virtiofs' ? ['virtiofs', ...args] : args;
}

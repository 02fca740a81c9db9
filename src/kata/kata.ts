/**
 * Kata Containers' configuration, unchanged, for this library: the `[hypervisor]` keys of
 * configuration.toml that concern virtiofsd, and the `extraoption=` mount option that
 * containerd's nydus snapshotter hands to the runtime.
 */
import { InvalidOptionError, VirtiofsDaemonError } from '../common/errors.js';
import { describeValue } from '../common/describe.js';
import { readOptions, requireOptionsObject } from '../common/options.js';
import { requireArgs } from '../common/validate.js';
import {
  VIRTIOFSD_OPTIONS,
  normalizeCacheMode,
  type CacheMode,
  type VirtiofsdTypedOptions,
} from '../virtiofsd/virtiofsd-args.js';

/** The keys of Kata's configuration.toml `[hypervisor.*]` section that concern virtiofsd. */
export interface KataVirtiofsConfig {
  /** The virtiofsd binary (`virtio_fs_daemon`). */
  virtio_fs_daemon?: string;
  /** The cache mode (`virtio_fs_cache`): auto, always, never (or `none`), metadata; `''` means auto. */
  virtio_fs_cache?: string;
  /** Extra arguments (`virtio_fs_extra_args`), in either dialect's spelling, e.g. `["--thread-pool-size=1", "--announce-submounts"]`. */
  virtio_fs_extra_args?: string[];
}

/** What {@link fromKataConfig} returns: options for `new Virtiofsd({ ...it, socketPath, sourcePath })`. */
export interface KataVirtiofsdOptions extends VirtiofsdTypedOptions {
  /** `virtio_fs_daemon`, as given; absent when it is not set (then Virtiofsd looks one up). */
  path?: string;
  /**
   * `virtio_fs_cache`, or a cache flag of `virtio_fs_extra_args` (`--cache=`, `-o cache=`), as a
   * {@link CacheMode} (`none` read as `never`, `''` as `auto`); absent when neither sets it.
   */
  cache?: CacheMode;
  /** true when `virtio_fs_extra_args` has `--syslog`; absent otherwise. */
  syslog?: boolean;
  /** true when `virtio_fs_extra_args` has `-d` or `-o debug`; absent otherwise. */
  debug?: boolean;
}

type Name = keyof VirtiofsdTypedOptions;
interface Meaning {
  name: Name | 'syslog' | 'debug' | 'cache' | 'ignore';
  value?: unknown;
}

const PLACEHOLDER = '\u0001';

/**
 * Every spelling of every typed option in both dialects, read off {@link VIRTIOFSD_OPTIONS} (one
 * fact, one place): exact spellings (`--xattr`, `-o no_xattr`, `--sandbox=chroot`) and value
 * prefixes (`--thread-pool-size=`, `-o xattrmap=`), plus the few flags that are not typed options.
 */
function spellings(): { exact: Map<string, Meaning>; prefixes: [string, Name][] } {
  const exact = new Map<string, Meaning>();
  const prefixes: [string, Name][] = [];
  const key = (tokens: string[]) => tokens.join(' ');
  for (const [name, spec] of Object.entries(VIRTIOFSD_OPTIONS) as [Name, (typeof VIRTIOFSD_OPTIONS)[Name]][]) {
    for (const s of [spec.legacy, spec.rust]) {
      if (s.on?.length) exact.set(key(s.on), { name, value: true });
      if (s.off?.length) exact.set(key(s.off), { name, value: false });
      if (!s.value) continue;
      if (Array.isArray(spec.kind)) {
        for (const v of spec.kind as readonly string[]) {
          const tokens = s.value(v);
          if (tokens.length) exact.set(key(tokens), { name, value: v });
        }
      } else {
        const template = key(s.value(PLACEHOLDER));
        prefixes.push([template.slice(0, template.indexOf(PLACEHOLDER)), name]);
      }
    }
  }
  // Not typed options, or spelled in a way the table does not emit.
  exact.set('--syslog', { name: 'syslog', value: true });
  exact.set('-d', { name: 'debug', value: true });
  exact.set('-o debug', { name: 'debug', value: true });
  exact.set('-f', { name: 'ignore' }); // foreground is the default of both
  exact.set('-o posix_lock', { name: 'posixLock', value: true });
  exact.set('-o no_posix_lock', { name: 'posixLock', value: false });
  for (const level of ['debug', 'info', 'warn']) exact.set(`-o loglevel=${level}`, { name: 'logLevel', value: level });
  exact.set('-o loglevel=err', { name: 'logLevel', value: 'error' });
  for (const mode of ['auto', 'always', 'never', 'metadata', 'none']) {
    exact.set(`--cache=${mode}`, { name: 'cache', value: mode });
    exact.set(`-o cache=${mode}`, { name: 'cache', value: mode });
  }
  return { exact, prefixes };
}

let table: ReturnType<typeof spellings> | undefined;

/** Flags that take a value, which Rust users also write as two arguments (`--sandbox chroot`). */
function takesValue(flag: string, t: ReturnType<typeof spellings>): boolean {
  const withEq = `${flag}=`;
  return t.prefixes.some(([p]) => p === withEq) || [...t.exact.keys()].some((k) => k.startsWith(withEq));
}

/**
 * The flag at `args[i]` as units of one meaning each: an `-o a,b` group becomes `-o a`, `-o b`;
 * `--flag value` becomes `--flag=value`. `last` is the index of the last word it took.
 */
function unitsAt(args: string[], i: number, t: ReturnType<typeof spellings>): { units: string[]; last: number } {
  const arg = args[i];
  if (arg === '-o' || (arg.startsWith('-o') && !arg.startsWith('--'))) {
    const group = arg === '-o' ? args[i + 1] : arg.slice(2);
    if (group === undefined)
      throw new InvalidOptionError(`virtio_fs_extra_args[${i}]`, "'-o' needs an option after it");
    return { units: group.split(',').map((part) => `-o ${part}`), last: arg === '-o' ? i + 1 : i };
  }
  if (arg.startsWith('--') && !arg.includes('=') && takesValue(arg, t) && i + 1 < args.length) {
    return { units: [`${arg}=${args[i + 1]}`], last: i + 1 };
  }
  return { units: [arg], last: i };
}

/** The typed option that `unit` (from `virtio_fs_extra_args[i]`) means, or an InvalidOptionError naming it. */
function meaningOf(unit: string, i: number, t: ReturnType<typeof spellings>): Meaning {
  const exact = t.exact.get(unit);
  if (exact) return exact;
  const prefix = t.prefixes.find(([p]) => unit.startsWith(p));
  if (!prefix) {
    const owned = /^(--shared-dir|-o source=|--socket|--fd|--socket-path|--socket-group)/.test(unit);
    throw new InvalidOptionError(
      `virtio_fs_extra_args[${i}]`,
      owned
        ? `'${unit}' is the runtime's to set: pass the shared directory as sourcePath and the socket as socketPath`
        : `'${unit}' has no typed equivalent here (see the option table in docs/options.md); ` +
            'drop it, or pass it through extraArgs to the one dialect that knows it',
    );
  }
  const [p, name] = prefix;
  const raw = unit.slice(p.length);
  const value = VIRTIOFSD_OPTIONS[name].kind === 'uint' ? (/^\d+$/.test(raw) ? Number(raw) : NaN) : raw;
  if (Number.isNaN(value))
    throw new InvalidOptionError(`virtio_fs_extra_args[${i}]`, `'${unit}' needs a whole number >= 0`);
  return { name, value };
}

/**
 * Kata's virtiofsd configuration as options for `new Virtiofsd()`: `virtio_fs_daemon` is the
 * path, `virtio_fs_cache` the cache mode (`none` and `''` as Kata reads them), and each flag of
 * `virtio_fs_extra_args` — in the Rust spelling Kata writes today (`--thread-pool-size=1
 * --announce-submounts --xattr`) or the legacy one of older configurations (`-o xattr`) — the
 * typed option it means, so the result starts either dialect. A flag with no typed meaning, a
 * value out of range, or two flags that contradict each other throw an
 * {@link InvalidOptionError} naming `virtio_fs_extra_args[i]`; the shared directory and the
 * socket are refused there too: they are the runtime's to set (`sourcePath`, `socketPath`).
 *
 * It applies no policy: what it returns are the operator's typed options, and
 * `xattr`, `sandbox: 'none'`, `modcaps` or `--syslog` pass as they are. Feed it the operator's
 * configuration.toml, never annotations or other untrusted input; a tenant's arguments belong in
 * `extraArgs` with `extraArgsPolicy: 'safe'`.
 *
 * `config` is read once, each key and each entry of `virtio_fs_extra_args` exactly once (a
 * getter or Proxy that throws becomes an InvalidOptionError naming the key; a list longer than
 * 65536 entries is refused before it is read).
 */
export function fromKataConfig(config: KataVirtiofsConfig): KataVirtiofsdOptions {
  requireOptionsObject('fromKataConfig', config, 'config');
  const raw = readOptions(config, ['virtio_fs_daemon', 'virtio_fs_cache', 'virtio_fs_extra_args']);
  const t = (table ??= spellings());
  const out: KataVirtiofsdOptions = {};
  if (raw.virtio_fs_daemon !== undefined) {
    if (typeof raw.virtio_fs_daemon !== 'string' || raw.virtio_fs_daemon === '') {
      throw new InvalidOptionError(
        'virtio_fs_daemon',
        `must be the path of virtiofsd, got ${describeValue(raw.virtio_fs_daemon)}`,
      );
    }
    out.path = raw.virtio_fs_daemon;
  }
  const cache = raw.virtio_fs_cache;
  if (cache !== undefined) {
    try {
      out.cache = normalizeCacheMode(cache);
    } catch (err) {
      throw new InvalidOptionError('virtio_fs_cache', (err as Error).message.replace(/^cache: /, ''), { cause: err });
    }
  }
  const args = requireArgs('virtio_fs_extra_args', raw.virtio_fs_extra_args);
  const set = (i: number, arg: string, m: Meaning): void => {
    if (m.name === 'ignore') return;
    const target = out as Record<string, unknown>;
    if (m.name === 'cache') {
      const mode = normalizeCacheMode(m.value);
      if (out.cache !== undefined && out.cache !== mode && cache !== undefined) {
        throw new InvalidOptionError(
          `virtio_fs_extra_args[${i}]`,
          `'${arg}' contradicts virtio_fs_cache = ${describeValue(cache)}; keep one`,
        );
      }
      out.cache = mode;
      return;
    }
    if (target[m.name] !== undefined && target[m.name] !== m.value) {
      throw new InvalidOptionError(
        `virtio_fs_extra_args[${i}]`,
        `'${arg}' sets ${m.name} to ${describeValue(m.value)}, but an earlier flag set it to ${describeValue(target[m.name])}; keep one`,
      );
    }
    target[m.name] = m.value;
  };
  for (let i = 0; i < args.length; i++) {
    const { units, last } = unitsAt(args, i, t);
    i = last;
    for (const unit of units) set(i, unit, meaningOf(unit, i, t));
  }
  return out;
}

/** The three fields of containerd's nydus snapshotter `extraoption`. */
export interface NydusExtraOption {
  /** The RAFS bootstrap (meta) file: `MountOption.source` of `Nydusd.mount`. */
  source: string;
  /** The RAFS configuration as JSON text: `MountOption.config`. */
  config: string;
  /** The snapshot directory of the layer. */
  snapshotdir: string;
}

/** `parseExtraOption` could not decode the snapshotter's mount options. */
export class ExtraOptionError extends VirtiofsDaemonError {
  constructor(
    code:
      | 'ERR_EXTRA_OPTION_MISSING'
      | 'ERR_EXTRA_OPTION_TOO_LARGE'
      | 'ERR_EXTRA_OPTION_BASE64'
      | 'ERR_EXTRA_OPTION_JSON'
      | 'ERR_EXTRA_OPTION_FIELD',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

const EXTRA_OPTION_KEY = 'extraoption=';

/**
 * The largest `extraoption=` value read: 1 MiB of base64 (768 KiB of JSON). The snapshotter's
 * is the base64 of `{source, config, snapshotdir}`, a few KiB with the RAFS configuration; a
 * megabyte is far beyond any real one and still small to decode and parse.
 */
export const MAX_EXTRA_OPTION_BYTES = 1 << 20;

const B64 = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64[c.charCodeAt(0)] = 1;

/**
 * Standard padded base64, checked in one pass: a length that is a multiple of 4, the alphabet,
 * and at most two `=` at the very end. (A regex of `(?:[A-Za-z0-9+/]{4})*` overflowed V8's
 * backtracking stack at about 4.5 MB.)
 */
function isPaddedBase64(s: string): boolean {
  if (s.length % 4 !== 0) return false;
  let end = s.length;
  if (s.endsWith('==')) end -= 2;
  else if (s.endsWith('=')) end -= 1;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || B64[c] !== 1) return false;
  }
  return true;
}

/**
 * Decode containerd's nydus snapshotter `extraoption=<base64 of JSON {source, config,
 * snapshotdir}>` from a mount's options, as Kata does before it asks nydusd to mount the layer
 * (the last `extraoption=` wins, as in Kata). `mountOptions` is read once, each entry once, at
 * most 65536 of them (an InvalidOptionError naming `mountOptions` otherwise, or for an entry
 * that is not a string). Throws an {@link ExtraOptionError}: `ERR_EXTRA_OPTION_MISSING` (no such
 * option), `_TOO_LARGE` (more than {@link MAX_EXTRA_OPTION_BYTES} of base64, refused before it is
 * looked at), `_BASE64` (not standard padded base64), `_JSON` (not a JSON object), `_FIELD` (a
 * field missing, empty or not a string).
 */
export function parseExtraOption(mountOptions: readonly string[]): NydusExtraOption {
  if (mountOptions === undefined)
    throw new InvalidOptionError('mountOptions', 'must be the mount options, a list of strings');
  const options = requireArgs('mountOptions', mountOptions);
  let encoded: string | undefined;
  for (const opt of options) {
    if (opt.startsWith(EXTRA_OPTION_KEY)) encoded = opt.slice(EXTRA_OPTION_KEY.length);
  }
  if (!encoded) {
    throw new ExtraOptionError(
      'ERR_EXTRA_OPTION_MISSING',
      `mountOptions: no non-empty '${EXTRA_OPTION_KEY}<base64>' among ${options.length} option(s); ` +
        'is this a mount from the nydus snapshotter (with its Kata volume option enabled)?',
    );
  }
  if (encoded.length > MAX_EXTRA_OPTION_BYTES) {
    throw new ExtraOptionError(
      'ERR_EXTRA_OPTION_TOO_LARGE',
      `mountOptions: the ${EXTRA_OPTION_KEY} value is ${encoded.length} bytes; at most ${MAX_EXTRA_OPTION_BYTES} ` +
        '(1 MiB of base64) are read. The snapshotter writes a few KiB: is this mount option really its?',
    );
  }
  if (!isPaddedBase64(encoded)) {
    throw new ExtraOptionError(
      'ERR_EXTRA_OPTION_BASE64',
      `mountOptions: the ${EXTRA_OPTION_KEY} value is not standard (padded) base64`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch (err) {
    const why = (err as Error).message;
    throw new ExtraOptionError(
      'ERR_EXTRA_OPTION_JSON',
      `mountOptions: the decoded ${EXTRA_OPTION_KEY} is not JSON: ${why}`,
      {
        cause: err,
      },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ExtraOptionError(
      'ERR_EXTRA_OPTION_JSON',
      `mountOptions: the decoded ${EXTRA_OPTION_KEY} is not a JSON object`,
    );
  }
  const fields = parsed as Record<string, unknown>;
  for (const field of ['source', 'config', 'snapshotdir'] as const) {
    if (typeof fields[field] !== 'string' || fields[field] === '') {
      throw new ExtraOptionError(
        'ERR_EXTRA_OPTION_FIELD',
        `mountOptions: the ${EXTRA_OPTION_KEY} JSON has no non-empty string '${field}' (got ${describeValue(fields[field] ?? null)})`,
      );
    }
  }
  return {
    source: fields.source as string,
    config: fields.config as string,
    snapshotdir: fields.snapshotdir as string,
  };
}

/**
 * virtiofsd's command line, from typed options, for both dialects. The two daemons disagree on
 * nearly every spelling (the legacy C daemon of QEMU <= 7.2 wants `-o xattr`, the Rust one
 * `--xattr`), so one table says, per typed option, how each dialect spells it and what it means
 * when the dialect has no spelling. Everything here is pure: no file is touched.
 *
 * Sources: `/usr/lib/qemu/virtiofsd --help` (7.2) and `virtiofsd --help` (Rust 1.13).
 */
import { InvalidOptionError } from '../common/errors.js';
import { checkExtraArgs, settingsOf, type ExtraArgsPolicy } from '../common/extra-args.js';
import { describeValue } from '../common/describe.js';
import { planIdmap, readIdmapHost, requireIdmap, type IdmapHost, type IdmapOption, type IdmapPlan } from './idmap.js';
import { compareVersions, releaseProblem, type VirtiofsdRelease } from '../common/virtiofsd-releases.js';

/**
 * How the guest caches what it reads of the share (virtiofsd's `--cache`, legacy `-o cache=`):
 * - `auto`: metadata and lookups expire after a timeout (1 s); file data is cached while the
 *   file is open (close-to-open consistency).
 * - `always`: metadata, lookups and data are cached and never expire: for a share nobody but
 *   the guest changes.
 * - `never`: nothing is cached; every access goes to the host (what another writer of the
 *   directory needs). The legacy daemon calls it `none`.
 * - `metadata`: metadata and lookups are cached and never expire, data is not (the Rust
 *   virtiofsd only).
 */
export type CacheMode = 'auto' | 'always' | 'never' | 'metadata';
/**
 * Which command line a virtiofsd speaks: `rust`, the Rust virtiofsd (what distributions ship
 * since QEMU 8.0 dropped the C one; any release), or `legacy`, the C virtiofsd of QEMU ≤ 7.2,
 * which runs only as root.
 */
export type Dialect = 'rust' | 'legacy';

/** The cache modes, and the other names callers use for them (Kata's seed: `none`; Kata's valid(): `''`). */
const CACHE_NAMES: Readonly<Record<string, CacheMode>> = {
  auto: 'auto',
  always: 'always',
  never: 'never',
  metadata: 'metadata',
  none: 'never',
  '': 'auto',
};

/** The log levels; `trace` and `off` exist in the Rust daemon only. */
export type VirtiofsdLogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'off';

/**
 * Options that mean the same on both dialects. Unset (`undefined`) means "the daemon's own
 * default", which is not always the same on both (see `announceSubmounts`, `killprivV2`).
 * An option a dialect cannot express is refused with an {@link InvalidOptionError} naming it
 * and the dialect, before anything is created.
 */
export interface VirtiofsdTypedOptions {
  /** Worker thread pool size; 0 disables the pool. Both: `--thread-pool-size=N`. @default the daemon's (0) */
  threadPoolSize?: number;
  /**
   * Tell the guest which directories are mount points. Legacy `-o announce_submounts` (off by
   * default, no way to say "off"); Rust `--announce-submounts` / `--no-announce-submounts` (on by default).
   * @default the daemon's (legacy off, Rust on)
   */
  announceSubmounts?: boolean;
  /** Extended attributes. Legacy `-o xattr` / `-o no_xattr`; Rust `--xattr`. @default off */
  xattr?: boolean;
  /** xattr name mapping rules, e.g. `:map::user.virtiofs.:` (enables xattr). Legacy `-o xattrmap=`; Rust `--xattrmap=`. */
  xattrmap?: string;
  /** POSIX ACLs (needs xattr, which it turns on). Legacy `-o posix_acl` + `-o xattr`; Rust `--posix-acl`. @default off */
  posixAcl?: boolean;
  /** Security labels (SELinux, needs xattr, which it turns on). Legacy `-o security_label` + `-o xattr`; Rust `--security-label`. @default off */
  securityLabel?: boolean;
  /**
   * How the daemon confines itself. Legacy `-o sandbox=namespace|chroot` (no `none`); Rust `--sandbox=`.
   * @default the daemon's (namespace)
   */
  sandbox?: 'namespace' | 'chroot' | 'none';
  /**
   * What seccomp does on a forbidden syscall. Rust `--seccomp=`; the legacy daemon always kills,
   * so there only `kill` is accepted (and spelled as nothing).
   * @default the daemon's (kill)
   */
  seccomp?: 'none' | 'kill' | 'log' | 'trap';
  /** Refuse every guest modification. Rust `--readonly`; the legacy daemon has none: `true` is refused there. @default false */
  readonly?: boolean;
  /**
   * Reference inodes by file handle instead of O_PATH fd. Rust `--inode-file-handles=`; the
   * legacy daemon always uses O_PATH fds, so there only `never` is accepted.
   * @default the daemon's (never)
   */
  inodeFileHandles?: 'never' | 'prefer' | 'mandatory';
  /** Honour the guest's O_DIRECT. Legacy `-o allow_direct_io` / `-o no_allow_direct_io`; Rust `--allow-direct-io`. @default off */
  allowDirectIo?: boolean;
  /** Writeback cache. Legacy `-o writeback` / `-o no_writeback`; Rust `--writeback`. @default off */
  writeback?: boolean;
  /**
   * FUSE_HANDLE_KILLPRIV_V2. Legacy `-o killpriv_v2` / `-o no_killpriv_v2` (on when the guest
   * supports it); Rust `--killpriv-v2` / `--no-killpriv-v2` (off).
   * @default the daemon's (legacy on, Rust off)
   */
  killprivV2?: boolean;
  /** READDIRPLUS. Legacy `-o readdirplus` / `-o no_readdirplus`; Rust `--no-readdirplus` (on by default). @default the daemon's */
  readdirplus?: boolean;
  /**
   * The daemon's log level. Legacy `-o log_level=` (`error` spelled `err`; no `trace`, no `off`);
   * Rust `--log-level=`. Conflicts with `debug: true` unless it is `debug`.
   * @default the daemon's (info)
   */
  logLevel?: VirtiofsdLogLevel;
  /** Capability changes, e.g. `+sys_admin:-chown`. Legacy `-o modcaps=`; Rust `--modcaps=`. */
  modcaps?: string;
  /** RLIMIT_NOFILE for the daemon (0 leaves it unchanged). Both: `--rlimit-nofile=N`. @default the daemon's */
  rlimitNofile?: number;
  /** Keep the guest's O_NOATIME. Rust `--preserve-noatime`; the legacy daemon has none: `true` is refused there. @default false */
  preserveNoatime?: boolean;
  /** Allow shared mmap with cache never/metadata. Rust `--allow-mmap`; legacy has none: `true` is refused there. @default false */
  allowMmap?: boolean;
  /**
   * How the daemon migrates its state to the destination (source side; ignored on the
   * destination): `find-paths` sends each inode's path (read from /proc/self/fd, else found by
   * searching the shared directory); `file-handles` sends file handles, which needs the same
   * shared directory on the same filesystem on both sides and CAP_DAC_READ_SEARCH on the
   * destination (`modcaps: '+dac_read_search'`, as root). Rust `--migration-mode=` (1.11.0;
   * `file-handles` 1.12.0); the legacy daemon cannot migrate: refused there.
   * @default the daemon's (find-paths)
   */
  migrationMode?: 'find-paths' | 'file-handles';
  /**
   * What the destination does when an inode cannot be migrated: `abort` fails the migration
   * (an error to the VMM), `guest-error` lets it finish and the guest gets errors on those
   * inodes. Rust `--migration-on-error=` (1.11.0); refused on the legacy daemon.
   * @default the daemon's (abort)
   */
  migrationOnError?: 'abort' | 'guest-error';
  /**
   * With `find-paths`: send each inode's file handle too, so that the destination checks it
   * opened the very same inode (protects against renames by others during the migration; both
   * sides must share the directory on the same filesystem). Rust `--migration-verify-handles`
   * (1.11.0); contradicts `migrationMode: 'file-handles'`; `true` is refused on the legacy daemon.
   * @default false
   */
  migrationVerifyHandles?: boolean;
  /**
   * With `find-paths`: re-check every path against its inode at switch-over and correct it
   * through /proc/self/fd (more resilient when others write the shared directory; can prolong
   * the switch-over). Rust `--migration-confirm-paths` (1.11.0); contradicts
   * `migrationMode: 'file-handles'`; `true` is refused on the legacy daemon.
   * @default false
   */
  migrationConfirmPaths?: boolean;
  /**
   * Remote POSIX locks. Legacy `-o posix_lock` (we pass `-o no_posix_lock` otherwise, as Kata);
   * the Rust daemon has none: `true` is refused there.
   * @default false
   */
  posixLock?: boolean;
  /** flock(2) locks. Legacy `-o flock` / `-o no_flock`; the Rust daemon has none: `true` is refused there. @default false */
  flock?: boolean;
  /** I/O timeout in seconds. Legacy `-o timeout=N`; the Rust daemon has none: refused there. @default the daemon's */
  timeout?: number;
  /** Most idle worker threads kept. Legacy `-o max_idle_threads=N`; the Rust daemon has none: refused there. @default 10 */
  maxIdleThreads?: number;
}

/** Everything the command line depends on. */
export interface VirtiofsdArgsInput extends VirtiofsdTypedOptions {
  /** Which command line to build (see {@link detectDialect} to ask a binary). */
  dialect: Dialect;
  /** The shared directory, as the daemon will be given it (not checked here: nothing is touched). */
  sourcePath: string;
  /** `none` is another name for `never`, `''` for `auto` (as Kata). @default 'auto' */
  cache?: CacheMode | 'none' | '';
  /** @default false */
  syslog?: boolean;
  /** @default false */
  debug?: boolean;
  /** @default [] */
  extraArgs?: string[];
  /** How much of `extraArgs` to trust (see {@link checkExtraArgs}). @default 'verbatim' */
  extraArgsPolicy?: ExtraArgsPolicy;
  /**
   * What the installed Rust virtiofsd said about itself ({@link probeVirtiofsd}): each argument
   * it lacks is refused, naming the option, its version and the first release that has it.
   * @default unknown: nothing is refused for the release
   */
  release?: VirtiofsdRelease & {
    /** The binary that was asked, named in each refusal. */
    binary?: string;
  };
  /** Guest ↔ host id mapping (see {@link IdmapOption}); the Rust daemon only. @default none */
  idmap?: IdmapOption;
  /**
   * What the mapping depends on: who runs the daemon, their /etc/subuid ranges, the daemon's
   * version. With `idmap` and without this, it is read from this host ({@link readIdmapHost}):
   * the one case where this builder touches files.
   */
  idmapHost?: IdmapHost;
}

/**
 * The values a typed option takes: `bool` (true or false), `uint` (a whole number ≥ 0), `string`
 * (non-empty, without NUL), or one of a list of strings.
 */
export type VirtiofsdOptionKind = 'bool' | 'uint' | 'string' | readonly string[];

/**
 * How one dialect spells a typed option. `on`/`off` for booleans (absent: no such spelling, then
 * `dflt` says which value is the same as saying nothing); `value` for the others (absent: the
 * dialect has none, `same` lists values that are its fixed behaviour and so need no spelling).
 * A value the dialect cannot express is refused, with `why`.
 */
export interface VirtiofsdOptionSpelling {
  /** The arguments that say `true` (`[]`: nothing to add; absent: the dialect cannot say it). */
  on?: string[];
  /** The arguments that say `false` (`[]`: nothing to add; absent: the dialect cannot say it). */
  off?: string[];
  /** The value the daemon has when nothing is said: that value, when it has no spelling, is passed as nothing. */
  dflt?: boolean;
  /** The arguments for a (checked) non-boolean value; `[]` means this value cannot be expressed. */
  value?: (v: string) => string[];
  /** Values that are the dialect's fixed behaviour: accepted, and passed as nothing. */
  same?: readonly string[];
  /** Why the dialect cannot express it, for the error. */
  why?: string;
  /**
   * Rust releases before `version` behave as `value` with no flag for it (and lack the flag
   * that says so): that value is spelled as nothing there.
   */
  before?: {
    /** The first Rust release with the flag. */
    version: string;
    /** What older releases always do. */
    value: boolean;
  };
}

/** One row of {@link VIRTIOFSD_OPTIONS}: what a typed option takes, and how each dialect spells it. */
export interface VirtiofsdOptionSpec {
  /** The values it takes. */
  kind: VirtiofsdOptionKind;
  /** How the legacy C virtiofsd spells it (mostly `-o name` / `-o no_name`). */
  legacy: VirtiofsdOptionSpelling;
  /** How the Rust virtiofsd spells it (`--flag`, `--flag=value`). */
  rust: VirtiofsdOptionSpelling;
}

/**
 * `value` escaped for a legacy `-o` option: the C parser splits `-o` values on commas, so each
 * backslash and comma gets a backslash before it (one level is right).
 */
export function escapeLegacyOptionValue(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}

const o = (opt: string) => ['-o', opt];
const LEGACY_LEVEL: Readonly<Record<string, string>> = { error: 'err', warn: 'warn', info: 'info', debug: 'debug' };
const MODCAPS = /^[+-][a-z_]+(?::[+-][a-z_]+)*$/;

/**
 * The typed options ({@link VirtiofsdTypedOptions}), each with the values it takes and how each
 * dialect spells it: the one table that {@link buildVirtiofsdArgs}, its refusals and
 * {@link fromKataConfig}'s reading of Kata's extra arguments are made from. Its order is the order
 * in the command line. For tools that show what each dialect supports; not to be changed.
 */
export const VIRTIOFSD_OPTIONS: Readonly<Record<keyof VirtiofsdTypedOptions, VirtiofsdOptionSpec>> = {
  threadPoolSize: {
    kind: 'uint',
    legacy: { value: (v) => [`--thread-pool-size=${v}`] },
    rust: { value: (v) => [`--thread-pool-size=${v}`] },
  },
  announceSubmounts: {
    kind: 'bool',
    legacy: { on: o('announce_submounts'), dflt: false },
    rust: {
      on: ['--announce-submounts'],
      off: ['--no-announce-submounts'],
      before: { version: '1.6.0', value: false },
    },
  },
  xattr: { kind: 'bool', legacy: { on: o('xattr'), off: o('no_xattr') }, rust: { on: ['--xattr'], dflt: false } },
  xattrmap: {
    kind: 'string',
    legacy: { value: (v) => o(`xattrmap=${escapeLegacyOptionValue(v)}`) },
    rust: { value: (v) => [`--xattrmap=${v}`] },
  },
  posixAcl: {
    kind: 'bool',
    legacy: { on: o('posix_acl'), off: o('no_posix_acl') },
    rust: { on: ['--posix-acl'], dflt: false },
  },
  securityLabel: {
    kind: 'bool',
    legacy: { on: o('security_label'), off: o('no_security_label') },
    rust: { on: ['--security-label'], dflt: false },
  },
  sandbox: {
    kind: ['namespace', 'chroot', 'none'],
    legacy: {
      value: (v) => (v === 'none' ? [] : o(`sandbox=${v}`)),
      why: "the legacy daemon always sandboxes itself (namespace or chroot); 'none' needs the Rust virtiofsd",
    },
    rust: { value: (v) => [`--sandbox=${v}`] },
  },
  seccomp: {
    kind: ['none', 'kill', 'log', 'trap'],
    legacy: {
      same: ['kill'],
      why: "the legacy daemon's seccomp filter always kills; other actions need the Rust virtiofsd",
    },
    rust: { value: (v) => [`--seccomp=${v}`] },
  },
  readonly: {
    kind: 'bool',
    legacy: { dflt: false, why: 'the legacy daemon has no read-only mode' },
    rust: { on: ['--readonly'], dflt: false },
  },
  inodeFileHandles: {
    kind: ['never', 'prefer', 'mandatory'],
    legacy: { same: ['never'], why: 'the legacy daemon always references inodes by O_PATH fd' },
    rust: { value: (v) => [`--inode-file-handles=${v}`] },
  },
  allowDirectIo: {
    kind: 'bool',
    legacy: { on: o('allow_direct_io'), off: o('no_allow_direct_io') },
    rust: { on: ['--allow-direct-io'], dflt: false },
  },
  writeback: {
    kind: 'bool',
    legacy: { on: o('writeback'), off: o('no_writeback') },
    rust: { on: ['--writeback'], dflt: false },
  },
  killprivV2: {
    kind: 'bool',
    legacy: { on: o('killpriv_v2'), off: o('no_killpriv_v2') },
    rust: { on: ['--killpriv-v2'], off: ['--no-killpriv-v2'], before: { version: '1.3.0', value: true } },
  },
  readdirplus: {
    kind: 'bool',
    legacy: { on: o('readdirplus'), off: o('no_readdirplus') },
    rust: { off: ['--no-readdirplus'], dflt: true },
  },
  logLevel: {
    kind: ['error', 'warn', 'info', 'debug', 'trace', 'off'],
    legacy: {
      value: (v) => (LEGACY_LEVEL[v] ? o(`log_level=${LEGACY_LEVEL[v]}`) : []),
      why: "the legacy daemon knows error, warn, info and debug; 'trace' and 'off' need the Rust virtiofsd",
    },
    rust: { value: (v) => [`--log-level=${v}`] },
  },
  modcaps: { kind: 'string', legacy: { value: (v) => o(`modcaps=${v}`) }, rust: { value: (v) => [`--modcaps=${v}`] } },
  rlimitNofile: {
    kind: 'uint',
    legacy: { value: (v) => [`--rlimit-nofile=${v}`] },
    rust: { value: (v) => [`--rlimit-nofile=${v}`] },
  },
  preserveNoatime: {
    kind: 'bool',
    legacy: { dflt: false, why: 'the legacy daemon has no --preserve-noatime' },
    rust: { on: ['--preserve-noatime'], dflt: false },
  },
  allowMmap: {
    kind: 'bool',
    legacy: { dflt: false, why: 'the legacy daemon has no --allow-mmap' },
    rust: { on: ['--allow-mmap'], dflt: false },
  },
  migrationMode: {
    kind: ['find-paths', 'file-handles'],
    legacy: { why: 'the legacy daemon cannot migrate its state (no --migration-mode)' },
    rust: { value: (v) => [`--migration-mode=${v}`] },
  },
  migrationOnError: {
    kind: ['abort', 'guest-error'],
    legacy: { why: 'the legacy daemon cannot migrate its state (no --migration-on-error)' },
    rust: { value: (v) => [`--migration-on-error=${v}`] },
  },
  migrationVerifyHandles: {
    kind: 'bool',
    legacy: { dflt: false, why: 'the legacy daemon cannot migrate its state (no --migration-verify-handles)' },
    rust: { on: ['--migration-verify-handles'], dflt: false },
  },
  migrationConfirmPaths: {
    kind: 'bool',
    legacy: { dflt: false, why: 'the legacy daemon cannot migrate its state (no --migration-confirm-paths)' },
    rust: { on: ['--migration-confirm-paths'], dflt: false },
  },
  posixLock: {
    kind: 'bool',
    // `-o no_posix_lock` is always in the legacy command line (as Kata's); `true` replaces it.
    legacy: { on: [], off: [] },
    rust: { dflt: false, why: 'the Rust virtiofsd does not support remote POSIX locks' },
  },
  flock: {
    kind: 'bool',
    legacy: { on: o('flock'), off: o('no_flock') },
    rust: { dflt: false, why: 'the Rust virtiofsd does not support flock' },
  },
  timeout: {
    kind: 'uint',
    legacy: { value: (v) => o(`timeout=${v}`) },
    rust: { why: 'the Rust virtiofsd has no I/O timeout option' },
  },
  maxIdleThreads: {
    kind: 'uint',
    legacy: { value: (v) => o(`max_idle_threads=${v}`) },
    rust: { why: 'the Rust virtiofsd has no max_idle_threads (use threadPoolSize)' },
  },
};

const DIALECT_NAME: Readonly<Record<Dialect, string>> = {
  legacy: 'the legacy C virtiofsd',
  rust: 'the Rust virtiofsd',
};

/** The cache mode `cache` names, or an {@link InvalidOptionError}. */
export function normalizeCacheMode(cache: unknown): CacheMode {
  if (cache === undefined) return 'auto';
  if (typeof cache === 'string' && Object.hasOwn(CACHE_NAMES, cache)) return CACHE_NAMES[cache];
  throw new InvalidOptionError(
    'cache',
    `${describeValue(cache)} is not a cache mode; use auto, always, never (also called none) or metadata`,
  );
}

function checkValue(name: string, kind: VirtiofsdOptionKind, value: unknown): string {
  if (kind === 'bool') {
    if (typeof value !== 'boolean')
      throw new InvalidOptionError(name, `must be true or false, got ${describeValue(value)}`);
    return String(value);
  }
  if (kind === 'uint') {
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      throw new InvalidOptionError(name, `must be a whole number >= 0, got ${describeValue(value)}`);
    }
    return String(value);
  }
  if (kind === 'string') {
    if (typeof value !== 'string' || value === '' || value.includes('\0')) {
      throw new InvalidOptionError(name, `must be a non-empty string without NUL bytes, got ${describeValue(value)}`);
    }
    if (name === 'modcaps' && !MODCAPS.test(value)) {
      throw new InvalidOptionError(
        name,
        `'${value}' is not a capability list; write it as +cap:-cap (e.g. +sys_admin:-chown)`,
      );
    }
    return value;
  }
  if (typeof value !== 'string' || !kind.includes(value)) {
    throw new InvalidOptionError(name, `${describeValue(value)} is not one of ${kind.join(', ')}`);
  }
  return value;
}

/** The spelling of one typed option in `dialect`, or an {@link InvalidOptionError} naming both. */
function spell(
  name: keyof VirtiofsdTypedOptions,
  value: unknown,
  dialect: Dialect,
  release: VirtiofsdArgsInput['release'],
): string[] {
  const spec = VIRTIOFSD_OPTIONS[name];
  const s = spec[dialect];
  const v = checkValue(name, spec.kind, value);
  const old = s.before && release?.version ? compareVersions(release.version, s.before.version) < 0 : false;
  if (old && value === s.before!.value) return [];
  const refuse = (): never => {
    throw new InvalidOptionError(
      name,
      `${describeValue(value)} cannot be expressed for ${DIALECT_NAME[dialect]}: ${s.why ?? 'it has no such option'}. ` +
        `Leave ${name} unset for this daemon, or use the other dialect`,
    );
  };
  if (spec.kind === 'bool') {
    const spelled = value ? s.on : s.off;
    if (spelled) return spelled;
    return s.dflt === value ? [] : refuse();
  }
  if (s.same?.includes(v)) return [];
  if (!s.value) return refuse();
  const out = s.value(v);
  return out.length ? out : refuse();
}

/**
 * The daemon's arguments (after argv[0]) for a socket at fd 3. Pure: no file is touched.
 * - legacy: `-o cache=<c> -o no_posix_lock -o source=<dir> --fd=3 -f` (`-d` with debug); the
 *   C option parser splits `-o` values on commas, so backslashes and commas in values are escaped,
 *   and `never` is spelled `none` there.
 * - rust: `--cache=<c> --shared-dir=<dir> --fd=3` (`--log-level=debug` with debug).
 * `--syslog` comes first when asked for, then the above, then the typed options in the order of
 * {@link VIRTIOFSD_OPTIONS}, then `idmap`'s (see {@link IdmapOption}), `extraArgs` last, checked against
 * `extraArgsPolicy`: under `known` and `safe` none may re-set what the library or a typed option set
 * here - a setting a typed option writes, in any spelling the dialect has; `xattr` when xattrmap,
 * posixAcl or securityLabel turn it on; the log level with `debug`; the id-mapping flags (and, for
 * a user namespace map, the sandbox) with `idmap`.
 * Throws {@link InvalidOptionError} for a bad cache mode, a typed option the dialect cannot
 * express, or an extra argument the policy refuses.
 */
export function buildVirtiofsdArgs(input: VirtiofsdArgsInput): string[] {
  const { dialect, sourcePath } = input;
  const cache = normalizeCacheMode(input.cache);
  const debug = input.debug === true;
  const extraArgs = input.extraArgs ?? [];
  if (dialect !== 'legacy' && dialect !== 'rust') {
    throw new InvalidOptionError('dialect', `${describeValue(dialect)} is not a dialect; use rust or legacy`);
  }
  if (debug && input.logLevel !== undefined && input.logLevel !== 'debug') {
    throw new InvalidOptionError('logLevel', `'${input.logLevel}' contradicts debug: true; set one of them`);
  }
  // Both daemons need xattr for ACLs and labels; the Rust one implies it, the legacy one refuses without.
  const needsXattr = input.posixAcl === true || input.securityLabel === true || input.xattrmap !== undefined;
  if (needsXattr && input.xattr === false) {
    const by = input.posixAcl ? 'posixAcl' : input.securityLabel ? 'securityLabel' : 'xattrmap';
    throw new InvalidOptionError('xattr', `false contradicts ${by}, which needs extended attributes; drop one of them`);
  }
  const args = input.syslog === true ? ['--syslog'] : [];
  if (dialect === 'legacy') {
    if (cache === 'metadata') {
      throw new InvalidOptionError(
        'cache',
        "'metadata' needs the Rust virtiofsd; the legacy C daemon knows auto, always and never",
      );
    }
    const lock = input.posixLock === true ? 'posix_lock' : 'no_posix_lock';
    const source = escapeLegacyOptionValue(sourcePath);
    args.push('-o', `cache=${cache === 'never' ? 'none' : cache}`, '-o', lock, '-o', `source=${source}`, '--fd=3');
    args.push(debug ? '-d' : '-f');
  } else {
    args.push(`--cache=${cache}`, `--shared-dir=${sourcePath}`, '--fd=3');
    if (debug) args.push('--log-level=debug');
  }
  if (input.migrationMode === 'file-handles') {
    const by = input.migrationVerifyHandles
      ? 'migrationVerifyHandles'
      : input.migrationConfirmPaths
        ? 'migrationConfirmPaths'
        : '';
    if (by) {
      throw new InvalidOptionError(
        by,
        "true contradicts migrationMode: 'file-handles', which migrates by file handle (the daemon refuses both); drop one of them",
      );
    }
  }
  const release = dialect === 'rust' ? input.release : undefined;
  // What the installed release lacks is refused by the option that asked for it.
  const requireRelease = (option: string, spelled: string[]): string[] => {
    for (const arg of release ? spelled : []) {
      const problem = releaseProblem(arg, release!, release!.binary);
      if (problem) {
        throw new InvalidOptionError(
          option,
          `${describeValue(input[option as keyof VirtiofsdArgsInput])} ${problem}. ` +
            `Upgrade virtiofsd, or leave ${option} unset for this daemon`,
        );
      }
    }
    return spelled;
  };
  if (input.syslog === true) requireRelease('syslog', ['--syslog']);
  if (dialect === 'rust') requireRelease('cache', [`--cache=${cache}`]);
  for (const name of Object.keys(VIRTIOFSD_OPTIONS) as (keyof VirtiofsdTypedOptions)[]) {
    const value = input[name];
    if (value === undefined || (debug && name === 'logLevel')) continue;
    args.push(...requireRelease(name, spell(name, value, dialect, release)));
  }
  if (dialect === 'legacy' && needsXattr && input.xattr === undefined && input.xattrmap === undefined)
    args.push(...o('xattr'));
  const idmap = idmapPlan(input);
  if (idmap) args.push(...idmap.args);
  const policy = input.extraArgsPolicy ?? 'verbatim';
  // What the typed options claim matters only to extra arguments that a policy reads.
  const claims = policy === 'verbatim' || extraArgs.length === 0 ? undefined : typedClaims(input, idmap);
  checkExtraArgs('extraArgs', extraArgs, policy, `virtiofsd-${dialect}`, claims, release);
  return [...args, ...extraArgs];
}

/** The id mapping of `input`, if any (see idmap.ts), refused by name on the legacy daemon. */
function idmapPlan(input: VirtiofsdArgsInput): IdmapPlan | undefined {
  const idmap = requireIdmap(input.idmap);
  if (!idmap) return undefined;
  if (input.dialect === 'legacy') {
    throw new InvalidOptionError(
      'idmap',
      'the legacy C virtiofsd cannot map ids (it has no --uid-map or --translate-uid, and runs only as root). ' +
        'Use the Rust virtiofsd (Debian 13: apt install virtiofsd) or leave idmap unset',
    );
  }
  return planIdmap(idmap, input.idmapHost ?? readIdmapHost(), { sandbox: input.sandbox, posixAcl: input.posixAcl });
}

type Table = 'virtiofsd-legacy' | 'virtiofsd-rust';
const ownKeys = new Map<string, readonly string[]>();

/**
 * The daemon settings the typed option `name` writes in `dialect`, whatever its value: every
 * setting of every spelling the dialect has for it (`xattr: false` spells nothing on the Rust
 * daemon, yet the xattr setting is the operator's all the same). Computed once per option.
 */
function keysOf(name: keyof VirtiofsdTypedOptions, dialect: Dialect): readonly string[] {
  const id = `${dialect} ${name}`;
  let keys = ownKeys.get(id);
  if (keys === undefined) {
    const spec = VIRTIOFSD_OPTIONS[name];
    const s = spec[dialect];
    const values = Array.isArray(spec.kind) ? (spec.kind as readonly string[]) : ['1'];
    const spellings = [s.on ?? [], s.off ?? [], ...(s.value ? values.map((v) => s.value!(v)) : [])];
    keys = [...new Set(spellings.flatMap((tokens) => settingsOf(`virtiofsd-${dialect}` as Table, tokens).keys))];
    ownKeys.set(id, keys);
  }
  return keys;
}

/**
 * What the typed options in `input` write, each setting with the option that wrote it: the
 * settings of each option the caller set (see {@link keysOf}); `xattr` for `xattrmap`, `posixAcl`
 * and `securityLabel` when they turn it on; the log level for `debug` (Rust `--log-level=debug`;
 * the legacy `-d` is the library's own); every id-mapping flag for `idmap`, and the sandbox too
 * when the mapping is the user namespace's. An extra argument may re-set none of them.
 */
function typedClaims(input: VirtiofsdArgsInput, idmap?: IdmapPlan): Map<string, string> {
  const claims = new Map<string, string>();
  const claim = (keys: readonly string[], name: string): void => {
    for (const key of keys) if (!claims.has(key)) claims.set(key, name);
  };
  if (input.debug === true) claim(['log_level'], 'debug');
  // Both mechanisms, whichever was used: an extra --translate-uid beside --uid-map maps ids all the same.
  if (idmap) claim(['uid_map', 'gid_map', 'translate_uid', 'translate_gid'], 'idmap');
  // The user namespace that maps them is the namespace sandbox's: another sandbox would undo it.
  if (idmap?.mechanism === 'uid-map') claim(['sandbox'], 'idmap');
  for (const name of Object.keys(VIRTIOFSD_OPTIONS) as (keyof VirtiofsdTypedOptions)[]) {
    if (input[name] !== undefined) claim(keysOf(name, input.dialect), name);
  }
  const on = (['xattrmap', 'posixAcl', 'securityLabel'] as const).find(
    (n) => input[n] !== undefined && input[n] !== false,
  );
  if (on) claim(['xattr'], on);
  return claims;
}

const QUIET_LEVELS = new Set(['error', 'err', 'warn', 'off']);

/**
 * True when the daemon logs above `info` (typed `logLevel`, or a level among `extraArgs`), so it
 * never prints the info line that says it waits for the VMM: readiness cannot be read from it.
 */
export function logsAboveInfo(input: {
  logLevel?: string | undefined;
  extraArgs?: readonly string[] | undefined;
}): boolean {
  if (input.logLevel !== undefined && QUIET_LEVELS.has(input.logLevel)) return true;
  const args = input.extraArgs ?? [];
  return args.some((arg, i) => {
    const value =
      /^--log-level=(.*)$/.exec(arg)?.[1] ??
      (arg === '--log-level' ? args[i + 1] : undefined) ??
      (args[i - 1] === '-o' ? /(?:^|,)(?:log_level|loglevel)=([a-z]+)/.exec(arg)?.[1] : undefined);
    return value !== undefined && QUIET_LEVELS.has(value);
  });
}

/**
 * How far to trust `extraArgs`. A trusted caller's arguments go to the daemon as they are
 * (`verbatim`); arguments that come from a less trusted place (a pod annotation, a tenant's
 * configuration) can be held to what the daemon documents (`known`) and, further, to what can
 * neither widen what the guest reaches nor loosen the daemon's confinement (`safe`).
 *
 * The tables below are each daemon's own `--help` (virtiofsd 7.2 legacy, virtiofsd 1.13 Rust,
 * nydusd 2.x `virtiofs` and 1.x/2.0 clap definitions), one entry per documented flag.
 */
import { InvalidOptionError } from './errors.js';
import { describeValue } from './describe.js';

/**
 * - `verbatim`: appended as they are (trusted callers).
 * - `known`: only flags the daemon documents, in their documented forms (`-o` and its value as
 *   two arguments; the legacy daemon's `--fd=N`-style flags with `=`), with valid values; none that
 *   this library sets itself (socket, shared directory, cache) and none that make the daemon exit
 *   or detach instead of serving.
 * - `safe`: `known`, and nothing that changes what the guest can reach or the daemon's
 *   confinement (shared directory, sandbox, seccomp, capabilities, uid/gid mapping, syslog,
 *   host files the daemon would read or write), and no `-o` value with a comma in it.
 */
export type ExtraArgsPolicy = 'verbatim' | 'known' | 'safe';

/** The daemons whose flags we know. */
export type ArgsTable = 'virtiofsd-legacy' | 'virtiofsd-rust' | 'nydusd-virtiofs' | 'nydusd-flat';

interface FlagDoc {
  /** Takes a value: any, or one of these, or matching this. */
  value?: true | readonly string[] | RegExp;
  /** The value must be attached with `=` (the legacy daemon's fuse_opt templates). */
  eqOnly?: boolean;
  /** Refused under `known` and `safe`: this library sets it (the text says with what). */
  owned?: string;
  /** Refused under `safe`: why it widens the guest's reach or loosens confinement. */
  unsafe?: string;
}

const UINT = /^\d+$/;
const EXITS = 'makes the daemon print something and exit instead of serving';
const SOCKET = 'is set by this library (it hands the daemon a listening socket at fd 3)';
const SHARED = 'changes which host directory the guest reaches (use sourcePath)';
const SANDBOX = "changes the daemon's confinement (use the sandbox option)";
const CAPS = "changes the daemon's capabilities";
const IDMAP = 'changes how guest uids/gids map to host ones';
const SYSLOG =
  "sends the daemon's output to syslog, where this library cannot see it or its readiness (use the syslog option)";
const CACHE = 'is set by this library (use the cache option)';
const HOST_FILE_READ = 'makes the daemon read a host file named by the argument';
const HOST_FILE_WRITE = 'makes the daemon write a host file named by the argument';

/** The flags both dialects spell alike that print something and exit instead of serving. */
const EXITING_FLAGS: Readonly<Record<string, FlagDoc>> = {
  '-h': { owned: EXITS },
  '--help': { owned: EXITS },
  '-V': { owned: EXITS },
  '--version': { owned: EXITS },
  '--print-capabilities': { owned: EXITS },
};

const LEGACY_FLAGS: Readonly<Record<string, FlagDoc>> = {
  ...EXITING_FLAGS,
  '-d': {},
  '-f': {},
  '--syslog': { unsafe: SYSLOG },
  '--daemonize': { owned: "detaches the daemon from this library's supervision" },
  '--rlimit-nofile': { value: UINT, eqOnly: true },
  '--socket-path': { value: true, eqOnly: true, owned: SOCKET },
  '--socket-group': { value: true, eqOnly: true, owned: SOCKET },
  '--fd': { value: UINT, eqOnly: true, owned: SOCKET },
  '--thread-pool-size': { value: UINT, eqOnly: true },
};

const LEGACY_O: Readonly<Record<string, FlagDoc>> = {
  debug: {},
  cache: { value: ['auto', 'always', 'none'], owned: CACHE },
  flock: {},
  no_flock: {},
  log_level: { value: ['debug', 'info', 'warn', 'err'] },
  max_idle_threads: { value: UINT },
  posix_lock: {},
  no_posix_lock: {},
  readdirplus: {},
  no_readdirplus: {},
  sandbox: { value: ['namespace', 'chroot'], unsafe: SANDBOX },
  timeout: { value: UINT },
  writeback: {},
  no_writeback: {},
  xattr: {},
  no_xattr: {},
  xattrmap: { value: true },
  modcaps: { value: true, unsafe: CAPS },
  allow_direct_io: {},
  no_allow_direct_io: {},
  announce_submounts: {},
  posix_acl: {},
  no_posix_acl: {},
  security_label: {},
  no_security_label: {},
  killpriv_v2: {},
  no_killpriv_v2: {},
  source: { value: true, owned: 'is set by this library (use sourcePath)', unsafe: SHARED },
  allow_root: { unsafe: 'lets every host user, not only the daemon owner, reach the filesystem (FUSE allow_root)' },
};

const RUST_FLAGS: Readonly<Record<string, FlagDoc>> = {
  ...EXITING_FLAGS,
  '--shared-dir': { value: true, owned: 'is set by this library (use sourcePath)', unsafe: SHARED },
  '--tag': { value: true },
  '--socket': { value: true, owned: SOCKET },
  '--socket-path': { value: true, owned: SOCKET },
  '--socket-group': { value: true, owned: SOCKET },
  '--fd': { value: UINT, owned: SOCKET },
  '--thread-pool-size': { value: UINT },
  '--xattr': {},
  '--posix-acl': {},
  '--xattrmap': { value: true },
  '--sandbox': { value: ['namespace', 'chroot', 'none'], unsafe: SANDBOX },
  '--readonly': {},
  '--seccomp': { value: ['none', 'kill', 'log', 'trap'], unsafe: "changes the daemon's syscall filter" },
  '--announce-submounts': {},
  '--no-announce-submounts': {},
  '--inode-file-handles': {
    value: ['never', 'prefer', 'mandatory', 'fallback'],
    eqOnly: true,
    unsafe:
      'opens files by handle (open_by_handle_at), which needs CAP_DAC_READ_SEARCH (use the inodeFileHandles option)',
  },
  '--cache': { value: ['auto', 'always', 'never', 'metadata'], owned: CACHE },
  '--allow-mmap': {},
  '--no-readdirplus': {},
  '--writeback': {},
  '--allow-direct-io': {},
  '--modcaps': { value: true, unsafe: CAPS },
  '--log-level': { value: ['error', 'warn', 'info', 'debug', 'trace', 'off'] },
  '--syslog': { unsafe: SYSLOG },
  '--rlimit-nofile': { value: UINT },
  '-o': {}, // handled apart
  '-d': {},
  '--no-killpriv-v2': {},
  '--killpriv-v2': {},
  '-f': {},
  '--security-label': {},
  '--uid-map': { value: true, unsafe: IDMAP },
  '--gid-map': { value: true, unsafe: IDMAP },
  '--translate-uid': { value: true, unsafe: IDMAP },
  '--translate-gid': { value: true, unsafe: IDMAP },
  '--preserve-noatime': {},
  '--migration-mode': { value: ['find-paths', 'file-handles'] },
  '--migration-on-error': { value: ['abort', 'guest-error'] },
  '--migration-verify-handles': {},
  '--migration-confirm-paths': {},
};

/** The Rust daemon's `-o` compatibility options (`parse_compat` in its src/main.rs). */
const RUST_O: Readonly<Record<string, FlagDoc>> = {
  xattrmap: { value: true },
  cache: { value: ['auto', 'always', 'none', 'metadata'], owned: CACHE },
  loglevel: { value: ['debug', 'info', 'warn', 'err'] },
  sandbox: { value: ['namespace', 'chroot'], unsafe: SANDBOX },
  source: { value: true, owned: 'is set by this library (use sourcePath)', unsafe: SHARED },
  modcaps: { value: true, unsafe: CAPS },
  ...Object.fromEntries(
    ['xattr', 'readdirplus', 'writeback', 'allow_direct_io', 'killpriv_v2', 'posix_acl', 'security_label']
      .flatMap((w) => [w, `no_${w}`])
      .concat(['announce_submounts', 'no_posix_lock', 'no_flock'])
      .map((w) => [w, {}]),
  ),
};

const NYDUS_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
/** nydusd 2.1+: the global flags plus those of the `virtiofs` subcommand (src/bin/nydusd/main.rs). */
const NYDUSD_VIRTIOFS: Readonly<Record<string, FlagDoc>> = {
  '-h': { owned: EXITS },
  '--help': { owned: EXITS },
  '-V': { owned: EXITS },
  '--version': { owned: EXITS },
  '--apisock': { value: true, owned: 'is set by this library (use apiSockPath)' },
  '-A': { value: true, owned: 'is set by this library (use apiSockPath)' },
  '--sock': { value: true, owned: 'is set by this library (use sockPath)' },
  '--config': { value: true, unsafe: HOST_FILE_READ },
  '-C': { value: true, unsafe: HOST_FILE_READ },
  '--id': { value: true },
  '--supervisor': { value: true, unsafe: "hands the daemon's state and fds to the process behind another socket" },
  '--log-level': { value: NYDUS_LEVELS },
  '-l': { value: NYDUS_LEVELS },
  '--log-file': { value: true, unsafe: HOST_FILE_WRITE },
  '-L': { value: true, unsafe: HOST_FILE_WRITE },
  '--log-rotation-size': { value: UINT },
  '--rlimit-nofile': { value: UINT },
  '--upgrade': { unsafe: 'starts the daemon in upgrade mode, taking its state from a supervisor' },
  '--hybrid-mode': { unsafe: 'serves a passthrough filesystem beside RAFS (and panicked in nydusd 2.2.0)' },
  '--shared-dir': { value: true, unsafe: 'shares another host directory with the guest (use sourcePath)' },
  '-s': { value: true, unsafe: 'shares another host directory with the guest (use sourcePath)' },
  '--bootstrap': { value: true, unsafe: HOST_FILE_READ },
  '-B': { value: true, unsafe: HOST_FILE_READ },
  '--localfs-dir': { value: true, unsafe: 'makes the daemon read blobs from a host directory named by the argument' },
  '-D': { value: true, unsafe: 'makes the daemon read blobs from a host directory named by the argument' },
  '--prefetch-files': { value: true, unsafe: HOST_FILE_READ },
  '--virtual-mountpoint': { value: true },
  '-m': { value: true },
};

/** nydusd 1.x and 2.0: one flat command line, no subcommand (clap 2, src/bin/nydusd/main.rs). */
const NYDUSD_FLAT: Readonly<Record<string, FlagDoc>> = {
  ...Object.fromEntries(
    Object.entries(NYDUSD_VIRTIOFS).filter(
      ([k]) => !['--log-rotation-size', '--localfs-dir', '-D', '-A', '-C', '-l', '-L', '-s', '-B', '-m'].includes(k),
    ),
  ),
  '--failover-policy': { value: ['flush', 'resend'] },
  '--thread-num': { value: UINT },
  '--mountpoint': { value: true, unsafe: 'mounts a FUSE filesystem on the host' },
  '--writable': {},
};

type Docs = Readonly<Record<string, FlagDoc>>;
const TABLES: Readonly<Record<ArgsTable, { flags: Docs; o?: Docs; name: string }>> = {
  'virtiofsd-legacy': { flags: LEGACY_FLAGS, o: LEGACY_O, name: 'the legacy C virtiofsd' },
  'virtiofsd-rust': { flags: RUST_FLAGS, o: RUST_O, name: 'the Rust virtiofsd' },
  'nydusd-virtiofs': { flags: NYDUSD_VIRTIOFS, name: 'nydusd (2.1+, virtiofs)' },
  'nydusd-flat': { flags: NYDUSD_FLAT, name: 'nydusd (1.x/2.0)' },
};

/** Split a `-o` group as the daemon does: the legacy C parser honours `\,`, the Rust one splits on every comma. */
function splitGroup(group: string, table: ArgsTable): string[] {
  if (table !== 'virtiofsd-legacy') return group.split(',');
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < group.length; i++) {
    const c = group[i];
    if (c === '\\' && i + 1 < group.length) cur += c + group[++i];
    else if (c === ',') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

function valueOk(doc: FlagDoc, v: string): boolean {
  if (doc.value === true) return v !== '';
  if (doc.value instanceof RegExp) return doc.value.test(v);
  return doc.value!.includes(v);
}

function describeValues(doc: FlagDoc): string {
  if (doc.value === true) return 'a non-empty value';
  if (doc.value instanceof RegExp) return 'a whole number';
  return `one of ${doc.value!.join(', ')}`;
}

/**
 * Check `args` against `policy` for the daemon `table`; `verbatim` checks nothing. Throws an
 * {@link InvalidOptionError} for `option[i]` naming the argument and why it is refused.
 */
export function checkExtraArgs(
  option: string,
  args: readonly string[],
  policy: ExtraArgsPolicy,
  table: ArgsTable,
): void {
  if (policy === 'verbatim') return;
  if (policy !== 'known' && policy !== 'safe') {
    throw new InvalidOptionError(
      'extraArgsPolicy',
      `${describeValue(policy)} is not a policy; use verbatim, known or safe`,
    );
  }
  const t = TABLES[table];
  const safe = policy === 'safe';
  const judge = (i: number, arg: string, doc: FlagDoc): void => {
    const why = (safe && doc.unsafe) || doc.owned;
    if (why)
      throw new InvalidOptionError(
        `${option}[${i}]`,
        `'${arg}' is refused under extraArgsPolicy '${policy}': it ${why}`,
      );
  };
  const refuse = (i: number, arg: string, why: string): never => {
    throw new InvalidOptionError(`${option}[${i}]`, `'${arg}' is refused under extraArgsPolicy '${policy}': ${why}`);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (t.o && arg === '-o') {
      const group = args[i + 1];
      if (group === undefined) refuse(i, arg, '-o needs an option after it');
      i++;
      const parts = splitGroup(group, table);
      if (parts.length > 1 && safe) {
        const list = parts.map((p) => `'${p}'`).join(', ');
        refuse(
          i,
          group,
          `it holds a comma, which ${t.name} splits into ${parts.length} options (${list}); pass one option per -o`,
        );
      }
      for (const part of parts) {
        const eq = part.indexOf('=');
        const name = eq < 0 ? part : part.slice(0, eq);
        const doc = Object.hasOwn(t.o, name) ? t.o[name] : undefined;
        if (!doc) refuse(i, group, `'-o ${name}' is not an option ${t.name} documents`);
        if (doc!.value && (eq < 0 || !valueOk(doc!, part.slice(eq + 1)))) {
          refuse(i, group, `'-o ${name}=' needs ${describeValues(doc!)}`);
        }
        if (!doc!.value && eq >= 0) refuse(i, group, `'-o ${name}' takes no value`);
        judge(i, group, doc!);
      }
      continue;
    }
    if (t.o && arg.startsWith('-o')) refuse(i, arg, "write -o and its option as two arguments ('-o', 'name=value')");
    if (!arg.startsWith('-') || arg === '-' || arg === '--') refuse(i, arg, `${t.name} takes no positional arguments`);
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const doc = Object.hasOwn(t.flags, name) ? t.flags[name] : undefined;
    if (!doc || name === '-o') refuse(i, arg, `it is not an option ${t.name} documents`);
    let value: string | undefined;
    const at = i; // a value in the next argument is judged with its flag
    if (doc!.value) {
      if (eq >= 0) value = arg.slice(eq + 1);
      else if (doc!.eqOnly) refuse(i, arg, `${t.name} takes it only as ${name}=<value>`);
      else if (i + 1 < args.length) value = args[++i];
      if (value === undefined || !valueOk(doc!, value)) {
        refuse(at, arg, `${name} needs ${describeValues(doc!)}, got ${describeValue(value)}`);
      }
    } else if (eq >= 0) {
      refuse(i, arg, `${name} takes no value`);
    }
    judge(at, arg, doc!);
  }
}

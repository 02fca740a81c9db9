/**
 * How far to trust `extraArgs`. A trusted caller's arguments go to the daemon as they are
 * (`verbatim`); arguments that come from a less trusted place (a pod annotation, a tenant's
 * configuration) can be held to what the daemon documents (`known`) and, further, to what can
 * neither widen what the guest reaches nor loosen the daemon's confinement (`safe`). Under both,
 * an extra argument never re-sets what this library or the operator's typed options set.
 *
 * The tables below are each daemon's own `--help` (virtiofsd 7.2 legacy, virtiofsd 1.13 Rust,
 * nydusd 2.x `virtiofs` and 1.x/2.0 clap definitions), one entry per documented flag. How each
 * daemon reads a command line was established by running the real virtiofsd binaries (nydusd:
 * its clap definitions and the stand-in that follows them); each row names the experiment:
 *
 * | | legacy C virtiofsd 7.2 (libfuse fuse_opt) | Rust virtiofsd 1.13 (clap 4) | nydusd (clap) |
 * |---|---|---|---|
 * | an option given twice | the last wins: `-o source=A -o source=B` fails "failed to stat source (B)" for a missing B, serves B under chroot; `--fd=3 --fd=4` accept()s on 4 (strace) | the last wins (`args_override_self`): `--shared-dir=A --shared-dir=B` reports B missing; `--fd=3 --fd=4` accept4()s on 4 | refused ("cannot be used multiple times") |
 * | `-o a=b`, `-o a` | yes | yes (the compat options of `parse_compat`) | no `-o` |
 * | `-oa=b`, `-o=a=b`, `-fo a=b` | `-oa=b` yes | all three (clap short-option forms) | — |
 * | `-o a,b=c` | split on `,`; `\,` and `\054` are a comma inside a value, `\` escapes any character (`-o sour\ce=B` sets source) | split on every `,`, no escapes | — |
 * | when `-o` applies | in argv order, as any other option | after all flags, whatever the order: `-o source=B --shared-dir=A` serves B, `-o loglevel=` beats `--log-level` | — |
 * | argv options inside `-o` | yes: `-o --fd=N`, `-o --socket-path=P`, `-o -d`, `-o --thread-pool-size=N` all take effect | no | — |
 * | `--a=b` | only for its `--x=` templates | yes | yes |
 * | `--a b` | no ("fuse: invalid argument `b'") | yes, unless b starts with `-` ("a value is required for '--tag <TAG>'") | yes, same |
 * | prefixes (`--shared-d=/`) | no ("unknown option(s)") | no ("unexpected argument '--shared-d'") | no |
 * | debug vs level | `-d`, `-o debug`, `-o -d` beat `-o log_level=` in either order | `-d` beats `--log-level` in either order | — |
 * | implied settings | `-o xattrmap=` turns xattr on even after `-o no_xattr`; `-o posix_acl` without xattr exits ("xattrs are disabled") | `--xattrmap`, `--posix-acl`, `--security-label` turn xattr on | — |
 *
 * So this check reads a `-o` group as each daemon does (the legacy one's escapes included), sees
 * which daemon setting each argument writes, and refuses under `known` and `safe` any that the
 * library's own command line or a typed option the caller set writes too, in any spelling the
 * daemon accepts; spellings it does not document (attached `-oa=b`, clustered shorts, a
 * separate value that starts with `-`) are refused as such.
 */
import { InvalidOptionError } from './errors.js';
import { describeValue } from './describe.js';
import { releaseProblem, type VirtiofsdRelease } from './virtiofsd-releases.js';

/**
 * - `verbatim`: appended as they are (trusted callers).
 * - `known`: only flags the daemon documents, in their documented forms (`-o` and its value as
 *   two arguments; the legacy daemon's `--fd=N`-style flags with `=`), with valid values; none that
 *   this library sets itself (socket, shared directory, cache, foreground/debug, syslog, legacy
 *   POSIX locks, nydusd's log level), none that re-set a typed option the caller set (in any
 *   spelling: `-o no_xattr` re-sets `xattr`, `--posix-acl` re-sets `xattr: false`), and none that
 *   make the daemon exit or detach instead of serving.
 * - `safe`: `known`, and nothing that changes what the guest can reach or the daemon's
 *   confinement (shared directory, sandbox, seccomp, capabilities, uid/gid mapping, extended
 *   attributes and their mapping, host files the daemon would read or write), and no `-o` value
 *   with a comma in it.
 */
export type ExtraArgsPolicy = 'verbatim' | 'known' | 'safe';

/** The daemons whose flags we know. */
export type ArgsTable = 'virtiofsd-legacy' | 'virtiofsd-rust' | 'nydusd-virtiofs' | 'nydusd-flat';

/**
 * The daemon settings the caller's own command line writes, each with the option that wrote it
 * (`xattr` → `'xattrmap'`): {@link checkExtraArgs} refuses an extra argument that writes one of
 * them. buildVirtiofsdArgs computes it from the typed options.
 */
export type ExtraArgsClaims = ReadonlyMap<string, string>;

interface FlagDoc {
  /** Takes a value: any, or one of these, or matching this. */
  value?: true | readonly string[] | RegExp;
  /** The value must be attached with `=` (the legacy daemon's fuse_opt templates). */
  eqOnly?: boolean;
  /** The daemon setting it writes; flags that write one setting re-set each other. */
  key?: string;
  /** Settings it turns on besides its own (`--posix-acl` turns xattr on). */
  implies?: readonly string[];
  /** Refused under `known` and `safe`: this library sets it (the text says with what). */
  owned?: string;
  /** Refused under `safe`: why it widens the guest's reach or loosens confinement. */
  unsafe?: string;
}

const UINT = /^\d+$/;
const EXITS = 'makes the daemon print something and exit instead of serving';
const SOCKET = 'is set by this library (it hands the daemon a listening socket at fd 3)';
const SHARED = 'changes which host directory the guest reaches (use sourcePath)';
const SOURCE = 'is set by this library (use sourcePath)';
const SANDBOX = "changes the daemon's confinement (use the sandbox option)";
const CAPS = "changes the daemon's capabilities";
const IDMAP = 'changes how guest uids/gids map to host ones (use the idmap option)';
const SYSLOG =
  "is set by this library's syslog option: it sends the daemon's output to syslog, where this library cannot see it or its readiness";
const CACHE = 'is set by this library (use the cache option)';
const FOREGROUND = 'is set by this library (it runs the legacy daemon with -f, or -d with the debug option)';
const DEBUG =
  'is set by this library (it runs the legacy daemon with -f, or -d with the debug option); -d also beats any log level';
const POSIX_LOCK =
  'is set by this library (it always passes -o no_posix_lock, or -o posix_lock: use the posixLock option)';
const NYDUS_LEVEL = 'is set by this library (it always passes --log-level: use the logLevel option)';
const HOST_FILE_READ = 'makes the daemon read a host file named by the argument';
const HOST_FILE_WRITE = 'makes the daemon write a host file named by the argument';
/**
 * Extended attributes are the operator's to give: the daemon runs as root with CAP_SETFCAP
 * (both dialects keep it after sandboxing: CapEff 0x880000db), so with xattrs on a guest sets
 * security.capability on files in the shared directory, and any host user who can run them gets
 * those capabilities; security.selinux relabels host files, ACLs grant host users access.
 */
const XATTR =
  'turns on extended attributes: the daemon keeps CAP_SETFCAP, so the guest could then set security.capability ' +
  '(file capabilities for any host user who runs the file), SELinux labels or ACLs on host files; ' +
  'only the operator may (the xattr, xattrmap, posixAcl and securityLabel options)';
const XATTRMAP =
  "replaces the xattr mapping, which is how an operator keeps the guest away from the host's security.* and " +
  'trusted.* attributes, and turns extended attributes on; only the operator may (the xattrmap option)';

/** A documented flag that writes the daemon setting `key`. */
const sets = (key: string, more: Omit<FlagDoc, 'key'> = {}): FlagDoc => ({ key, ...more });

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
  '-d': { owned: DEBUG },
  '-f': { owned: FOREGROUND },
  '--syslog': { owned: SYSLOG },
  '--daemonize': { owned: "detaches the daemon from this library's supervision" },
  '--rlimit-nofile': sets('rlimit_nofile', { value: UINT, eqOnly: true }),
  '--socket-path': { value: true, eqOnly: true, owned: SOCKET },
  '--socket-group': { value: true, eqOnly: true, owned: SOCKET },
  '--fd': { value: UINT, eqOnly: true, owned: SOCKET },
  '--thread-pool-size': sets('thread_pool_size', { value: UINT, eqOnly: true }),
};

/** The legacy daemon's `-o` options (fuse_opt templates of passthrough_ll.c and helper.c). */
const LEGACY_O: Readonly<Record<string, FlagDoc>> = {
  debug: { owned: DEBUG },
  cache: { value: ['auto', 'always', 'none'], owned: CACHE },
  flock: sets('flock'),
  no_flock: sets('flock'),
  log_level: sets('log_level', { value: ['debug', 'info', 'warn', 'err'] }),
  max_idle_threads: sets('max_idle_threads', { value: UINT }),
  posix_lock: { owned: POSIX_LOCK },
  no_posix_lock: { owned: POSIX_LOCK },
  readdirplus: sets('readdirplus'),
  no_readdirplus: sets('readdirplus'),
  sandbox: sets('sandbox', { value: ['namespace', 'chroot'], unsafe: SANDBOX }),
  timeout: sets('timeout', { value: UINT }),
  writeback: sets('writeback'),
  no_writeback: sets('writeback'),
  xattr: sets('xattr', { unsafe: XATTR }),
  no_xattr: sets('xattr'),
  xattrmap: sets('xattrmap', { value: true, implies: ['xattr'], unsafe: XATTRMAP }),
  modcaps: sets('modcaps', { value: true, unsafe: CAPS }),
  allow_direct_io: sets('allow_direct_io'),
  no_allow_direct_io: sets('allow_direct_io'),
  announce_submounts: sets('announce_submounts'),
  posix_acl: sets('posix_acl', { unsafe: XATTR }),
  no_posix_acl: sets('posix_acl'),
  security_label: sets('security_label', { unsafe: XATTR }),
  no_security_label: sets('security_label'),
  killpriv_v2: sets('killpriv_v2'),
  no_killpriv_v2: sets('killpriv_v2'),
  source: { value: true, owned: SOURCE, unsafe: SHARED },
  allow_root: sets('allow_root', {
    unsafe: 'lets every host user, not only the daemon owner, reach the filesystem (FUSE allow_root)',
  }),
};

const RUST_FLAGS: Readonly<Record<string, FlagDoc>> = {
  ...EXITING_FLAGS,
  '--shared-dir': { value: true, owned: SOURCE, unsafe: SHARED },
  '--tag': sets('tag', { value: true }),
  '--socket': { value: true, owned: SOCKET },
  '--socket-path': { value: true, owned: SOCKET },
  '--socket-group': { value: true, owned: SOCKET },
  '--fd': { value: UINT, owned: SOCKET },
  '--thread-pool-size': sets('thread_pool_size', { value: UINT }),
  '--xattr': sets('xattr', { unsafe: XATTR }),
  '--posix-acl': sets('posix_acl', { implies: ['xattr'], unsafe: XATTR }),
  '--xattrmap': sets('xattrmap', { value: true, implies: ['xattr'], unsafe: XATTRMAP }),
  '--sandbox': sets('sandbox', { value: ['namespace', 'chroot', 'none'], unsafe: SANDBOX }),
  '--readonly': sets('readonly'),
  '--seccomp': sets('seccomp', {
    value: ['none', 'kill', 'log', 'trap'],
    unsafe: "changes the daemon's syscall filter",
  }),
  '--announce-submounts': sets('announce_submounts'),
  '--no-announce-submounts': sets('announce_submounts'),
  '--inode-file-handles': sets('inode_file_handles', {
    value: ['never', 'prefer', 'mandatory', 'fallback'],
    eqOnly: true,
    unsafe:
      'opens files by handle (open_by_handle_at), which needs CAP_DAC_READ_SEARCH (use the inodeFileHandles option)',
  }),
  '--cache': { value: ['auto', 'always', 'never', 'metadata'], owned: CACHE },
  '--allow-mmap': sets('allow_mmap'),
  '--no-readdirplus': sets('readdirplus'),
  '--writeback': sets('writeback'),
  '--allow-direct-io': sets('allow_direct_io'),
  '--modcaps': sets('modcaps', { value: true, unsafe: CAPS }),
  '--log-level': sets('log_level', { value: ['error', 'warn', 'info', 'debug', 'trace', 'off'] }),
  '--syslog': { owned: SYSLOG },
  '--rlimit-nofile': sets('rlimit_nofile', { value: UINT }),
  '-o': {}, // handled apart
  '-d': sets('log_level'), // "Set log level to debug", beating --log-level in either order
  '--no-killpriv-v2': sets('killpriv_v2'),
  '--killpriv-v2': sets('killpriv_v2'),
  '-f': {}, // no effect
  '--security-label': sets('security_label', { implies: ['xattr'], unsafe: XATTR }),
  // Each adds a range (clap appends repeated ones): all four are written by the idmap option.
  '--uid-map': sets('uid_map', { value: true, unsafe: IDMAP }),
  '--gid-map': sets('gid_map', { value: true, unsafe: IDMAP }),
  '--translate-uid': sets('translate_uid', { value: true, unsafe: IDMAP }),
  '--translate-gid': sets('translate_gid', { value: true, unsafe: IDMAP }),
  '--preserve-noatime': sets('preserve_noatime'),
  '--migration-mode': sets('migration_mode', { value: ['find-paths', 'file-handles'] }),
  '--migration-on-error': sets('migration_on_error', { value: ['abort', 'guest-error'] }),
  '--migration-verify-handles': sets('migration_verify_handles'),
  '--migration-confirm-paths': sets('migration_confirm_paths'),
};

/**
 * The Rust daemon's `-o` compatibility options (`parse_compat` in its src/main.rs). They are
 * applied after every flag, so each beats the flag of the same setting wherever it stands.
 */
const RUST_O: Readonly<Record<string, FlagDoc>> = {
  xattrmap: sets('xattrmap', { value: true, implies: ['xattr'], unsafe: XATTRMAP }),
  cache: { value: ['auto', 'always', 'none', 'metadata'], owned: CACHE },
  loglevel: sets('log_level', { value: ['debug', 'info', 'warn', 'err'] }),
  sandbox: sets('sandbox', { value: ['namespace', 'chroot'], unsafe: SANDBOX }),
  source: { value: true, owned: SOURCE, unsafe: SHARED },
  modcaps: sets('modcaps', { value: true, unsafe: CAPS }),
  xattr: sets('xattr', { unsafe: XATTR }),
  no_xattr: sets('xattr'),
  readdirplus: sets('readdirplus'),
  no_readdirplus: sets('readdirplus'),
  writeback: sets('writeback'),
  no_writeback: sets('writeback'),
  allow_direct_io: sets('allow_direct_io'),
  no_allow_direct_io: sets('allow_direct_io'),
  killpriv_v2: sets('killpriv_v2'),
  no_killpriv_v2: sets('killpriv_v2'),
  posix_acl: sets('posix_acl', { implies: ['xattr'], unsafe: XATTR }),
  no_posix_acl: sets('posix_acl'),
  security_label: sets('security_label', { implies: ['xattr'], unsafe: XATTR }),
  no_security_label: sets('security_label'),
  announce_submounts: sets('announce_submounts'),
  no_posix_lock: {}, // accepted and ignored
  no_flock: {}, // accepted and ignored
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
  '--log-level': { value: NYDUS_LEVELS, owned: NYDUS_LEVEL },
  '-l': { value: NYDUS_LEVELS, owned: NYDUS_LEVEL },
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
interface Table {
  flags: Docs;
  o?: Docs;
  name: string;
  /** `-o` groups read as libfuse's fuse_opt does (escapes), else split on every comma. */
  fuseOpt?: boolean;
}
const TABLES: Readonly<Record<ArgsTable, Table>> = {
  'virtiofsd-legacy': { flags: LEGACY_FLAGS, o: LEGACY_O, name: 'the legacy C virtiofsd', fuseOpt: true },
  'virtiofsd-rust': { flags: RUST_FLAGS, o: RUST_O, name: 'the Rust virtiofsd' },
  'nydusd-virtiofs': { flags: NYDUSD_VIRTIOFS, name: 'nydusd (2.1+, virtiofs)' },
  'nydusd-flat': { flags: NYDUSD_FLAT, name: 'nydusd (1.x/2.0)' },
};

/**
 * Split a `-o` group as the daemon does. The Rust one splits on every comma. libfuse's
 * process_real_option_group splits on a bare comma and unescapes each part: `\` followed by
 * three octal digits (first 0-3) is that byte, `\` followed by anything else is that character,
 * so `-o sour\ce=/` is `source=/` and `a\,b` / `a\054b` are `a,b` inside one part.
 */
function splitGroup(group: string, fuseOpt: boolean): string[] {
  if (!fuseOpt) return group.split(',');
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < group.length; i++) {
    const c = group[i];
    if (c === ',') {
      parts.push(cur);
      cur = '';
    } else if (c === '\\' && i + 1 < group.length) {
      const octal = /^[0-3][0-7][0-7]/.exec(group.slice(i + 1, i + 4));
      if (octal) {
        cur += String.fromCharCode(parseInt(octal[0], 8));
        i += 3;
      } else {
        cur += group[++i];
      }
    } else {
      cur += c;
    }
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

/** One documented flag of a command line: where it stands, how a message quotes it, what it is. */
interface Unit {
  at: number;
  shown: string;
  doc: FlagDoc;
}

type Refuse = (i: number, shown: string, why: string) => never;

/**
 * Read `args` as the daemon of `t` does, flag by flag, calling `visit` for each in order. Whatever
 * is not a documented flag in a documented form goes to `refuse`; so do `-o` groups with a comma
 * unless `commas`.
 */
function walk(args: readonly string[], t: Table, commas: boolean, refuse: Refuse, visit: (u: Unit) => void): void {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (t.o && arg === '-o') {
      const group = args[i + 1];
      if (group === undefined) refuse(i, arg, '-o needs an option after it');
      i++;
      const shown = `-o ${group}`;
      const parts = splitGroup(group, t.fuseOpt === true);
      if (parts.length > 1 && !commas) {
        const list = parts.map((p) => `'${p}'`).join(', ');
        refuse(
          i,
          shown,
          `it holds a comma, which ${t.name} splits into ${parts.length} options (${list}); pass one option per -o`,
        );
      }
      for (const part of parts) {
        const eq = part.indexOf('=');
        const name = eq < 0 ? part : part.slice(0, eq);
        const doc = Object.hasOwn(t.o, name) ? t.o[name] : undefined;
        if (!doc) refuse(i, shown, `'-o ${name}' is not an option ${t.name} documents`);
        if (doc.value && (eq < 0 || !valueOk(doc, part.slice(eq + 1)))) {
          refuse(i, shown, `'-o ${name}=' needs ${describeValues(doc)}`);
        }
        if (!doc.value && eq >= 0) refuse(i, shown, `'-o ${name}' takes no value`);
        visit({ at: i, shown, doc: doc });
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
    if (doc.value) {
      if (eq >= 0) value = arg.slice(eq + 1);
      else if (doc.eqOnly) refuse(i, arg, `${t.name} takes it only as ${name}=<value>`);
      else if (i + 1 < args.length) value = args[++i];
      if (value === undefined || !valueOk(doc, value)) {
        refuse(at, arg, `${name} needs ${describeValues(doc)}, got ${describeValue(value)}`);
      }
      // clap reads a next word that starts with '-' as an option, not as this one's value.
      if (eq < 0 && value.startsWith('-')) {
        refuse(at, arg, `${t.name} would read '${value}' as an option, not as its value; write ${name}=${value}`);
      }
    } else if (eq >= 0) {
      refuse(i, arg, `${name} takes no value`);
    }
    visit({ at, shown: arg, doc: doc });
  }
}

/**
 * The daemon settings `args` (well-formed for `table`, e.g. this library's own spelling of a
 * typed option) write: `keys` each flag's own, `implied` those it turns on besides.
 */
export function settingsOf(table: ArgsTable, args: readonly string[]): { keys: string[]; implied: string[] } {
  const keys: string[] = [];
  const implied: string[] = [];
  const refuse: Refuse = (i, shown, why) => {
    throw new Error(`settingsOf: ${table}: '${shown}' (${i}): ${why}`);
  };
  walk(args, TABLES[table], true, refuse, (u) => {
    if (u.doc.key) keys.push(u.doc.key);
    implied.push(...(u.doc.implies ?? []));
  });
  return { keys, implied };
}

/**
 * Check `args` against `policy` for the daemon `table`; `verbatim` checks nothing. `claims` are
 * the settings the caller's own command line writes (see {@link ExtraArgsClaims}; buildVirtiofsdArgs
 * passes those of the typed options): an argument that writes one, in any spelling, is refused
 * too. With the installed Rust virtiofsd's `release` (table `virtiofsd-rust`), a flag newer than
 * it is refused as well: it documents only its own. Throws an {@link InvalidOptionError} for
 * `option[i]` naming the argument and why.
 */
export function checkExtraArgs(
  option: string,
  args: readonly string[],
  policy: ExtraArgsPolicy,
  table: ArgsTable,
  claims: ExtraArgsClaims = new Map(),
  release?: VirtiofsdRelease & { binary?: string },
): void {
  if (policy === 'verbatim') return;
  if (policy !== 'known' && policy !== 'safe') {
    throw new InvalidOptionError(
      'extraArgsPolicy',
      `${describeValue(policy)} is not a policy; use verbatim, known or safe`,
    );
  }
  const safe = policy === 'safe';
  const refuse: Refuse = (i, shown, why) => {
    throw new InvalidOptionError(`${option}[${i}]`, `'${shown}' is refused under extraArgsPolicy '${policy}': ${why}`);
  };
  walk(args, TABLES[table], !safe, refuse, ({ at, shown, doc }) => {
    for (const key of [doc.key, ...(doc.implies ?? [])]) {
      const by = key === undefined ? undefined : claims.get(key);
      if (by !== undefined) {
        refuse(
          at,
          shown,
          `${key} is set by the typed option ${by} (the operator's); a tenant's arguments cannot re-set it`,
        );
      }
    }
    const why = (safe && doc.unsafe) || doc.owned;
    if (why) refuse(at, shown, `it ${why}`);
    const tooNew = release && table === 'virtiofsd-rust' ? releaseProblem(shown, release, release.binary) : undefined;
    if (tooNew) refuse(at, shown, `it ${tooNew}`);
  });
}

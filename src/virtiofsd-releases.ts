/**
 * Which Rust virtiofsd release first accepts each argument this library may pass, so that an
 * option the installed daemon lacks is refused by name before anything is created, instead of
 * the daemon exiting on an unknown argument (Incus #1702, #2947). Pure data and comparisons.
 *
 * How the table was established: from upstream's history (gitlab.com/virtio-fs/virtiofsd, read
 * through a GitHub mirror that carries it up to v1.13.3), at each release commit ("Bump version
 * to vX.Y.Z"): the flags of `struct Opt` in src/main.rs, the values its parsers accept
 * (`SandboxMode`, `CachePolicy`, `InodeFileHandlesCommandLineMode`, `parse_seccomp`, the log
 * level type, `MigrationMode`) and what `print_capabilities()` prints. Two findings differ from
 * what is often said: `--killpriv-v2` came in 1.3.0 (1.1.0 and 1.2.0 only had `--no-killpriv-v2`,
 * with KILLPRIV_V2 on by default, as in 1.0.0), and `separate-options` in 1.11.1.
 */

/** What the installed Rust virtiofsd says about itself: `--version` and `--print-capabilities`. */
export interface VirtiofsdRelease {
  /** Its version (`1.13.2`), or null when `--version` names none. */
  version: string | null;
  /** The `features` of `--print-capabilities`, or null when it printed no JSON. */
  capabilities: readonly string[] | null;
}

/**
 * The first release that accepts each argument (flag, or `flag=value` where only some values
 * are newer). Arguments not listed are in 1.0.0, the first release.
 */
export const RUST_VIRTIOFSD_SINCE: Readonly<Record<string, string>> = {
  '--syslog': '1.1.0',
  '--no-killpriv-v2': '1.1.0',
  '--seccomp=log': '1.1.0',
  '--inode-file-handles=mandatory': '1.1.0',
  '--log-level=off': '1.1.0',
  '--posix-acl': '1.2.0',
  '--modcaps': '1.2.0',
  '--inode-file-handles=prefer': '1.2.0',
  '--killpriv-v2': '1.3.0',
  '--security-label': '1.4.0',
  '--uid-map': '1.6.0',
  '--gid-map': '1.6.0',
  '--no-announce-submounts': '1.6.0',
  '--preserve-noatime': '1.7.0',
  '--cache=metadata': '1.8.0',
  '--tag': '1.9.0',
  '--allow-mmap': '1.11.0',
  '--migration-mode': '1.11.0',
  '--migration-on-error': '1.11.0',
  '--migration-verify-handles': '1.11.0',
  '--migration-confirm-paths': '1.11.0',
  '--migration-mode=file-handles': '1.12.0',
  '--readonly': '1.13.0',
  '--translate-uid': '1.13.0',
  '--translate-gid': '1.13.0',
};

/**
 * Arguments whose support a `--print-capabilities` feature advertises: where the daemon lists
 * its features, the feature decides (a build may carry it whatever its version says); where it
 * prints none (releases before 1.11.1 want `--shared-dir` even for `--print-capabilities`), the
 * version does. The migration flags came with `migrate-precopy` (1.11.0).
 */
const RUST_FEATURE_OF: Readonly<Record<string, string>> = {
  '--migration-mode': 'migrate-precopy',
  '--migration-on-error': 'migrate-precopy',
  '--migration-verify-handles': 'migrate-precopy',
  '--migration-confirm-paths': 'migrate-precopy',
};

/** `1.13.2` from `virtiofsd 1.13.2`, `v1.7.0-dirty`, `7.2.22 (Debian …)`; null when there is none. */
export function parseVersion(text: string): string | null {
  const m = /\bv?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? `${Number(m[1])}.${Number(m[2])}.${Number(m[3] ?? 0)}` : null;
}

/** Negative, 0 or positive as `a` is older than, the same as or newer than `b` (both `x.y.z`). */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** The flag of an argument: `--cache` of `--cache=metadata`. */
function flagOf(arg: string): string {
  const eq = arg.indexOf('=');
  return eq < 0 ? arg : arg.slice(0, eq);
}

/** The release an argument needs: the newer of its flag's and its value's. */
export function rustSince(arg: string): string | undefined {
  const byValue = RUST_VIRTIOFSD_SINCE[arg];
  const byFlag = RUST_VIRTIOFSD_SINCE[flagOf(arg)];
  if (byValue === undefined || byFlag === undefined) return byValue ?? byFlag;
  return compareVersions(byValue, byFlag) >= 0 ? byValue : byFlag;
}

/** True when some argument of `args` is newer than the first release (so the release matters). */
export function needsRelease(args: readonly string[]): boolean {
  return args.some((a) => rustSince(a) !== undefined);
}

/**
 * Why `release` cannot take `arg`, or undefined when it can (or when nothing tells: no version
 * and no feature list). The sentence names the argument, the release that has it and what the
 * daemon said; the caller adds the option and the fix.
 */
export function releaseProblem(arg: string, release: VirtiofsdRelease, binary?: string): string | undefined {
  const since = rustSince(arg);
  if (since === undefined) return undefined;
  // Name what needs that release: the whole argument when its value is newer than its flag.
  const shown = RUST_VIRTIOFSD_SINCE[arg] === since ? arg : flagOf(arg);
  const feature = RUST_FEATURE_OF[flagOf(arg)];
  const who = binary === undefined ? 'the installed virtiofsd' : `'${binary}'`;
  const installed = release.version === null ? who : `${who} is ${release.version}`;
  if (feature && release.capabilities !== null) {
    if (!release.capabilities.includes(feature)) {
      return (
        `needs ${shown}, which comes with the ${feature} capability (Rust virtiofsd ${since} and later); ` +
        `${installed} and its --print-capabilities does not list ${feature}`
      );
    }
    // The feature is there; a value newer than the flag still goes by the version.
    if (RUST_VIRTIOFSD_SINCE[arg] === undefined) return undefined;
  }
  if (release.version === null || compareVersions(release.version, since) >= 0) return undefined;
  return `needs ${shown}, which the Rust virtiofsd has from ${since} on; ${installed}`;
}

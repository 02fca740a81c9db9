/**
 * Which virtiofsd to run when the caller names none, found the standard way: QEMU's vhost-user
 * backend descriptors (docs/interop/vhost-user.json; libvirt and Lima read them too) of type
 * `fs`, then the well-known paths. And which of them is the legacy C daemon of QEMU ≤ 7.2, told
 * without running it: as anyone but root it does not even answer `--version`.
 *
 * Descriptors are JSON files `{ "type": "fs", "binary": "/abs/path", … }` in, from general to
 * specific, /usr/share/qemu/vhost-user (distribution packages), /etc/qemu/vhost-user (the
 * administrator) and $XDG_CONFIG_HOME/qemu/vhost-user (the user; default ~/.config). The files
 * of all three are sorted by file name; a file of a more specific directory replaces the one of
 * the same name in a less specific one, and an empty file hides it. What Debian ships:
 * 12's qemu-system-common `50-qemu-virtiofsd.json` → /usr/lib/qemu/virtiofsd (legacy C);
 * 13's virtiofsd `50-virtiofsd.json` → /usr/libexec/virtiofsd (Rust, with `"features"`).
 * A descriptor names a program we will run, so it is read as a trusted file (see
 * trusted-file.ts): one that someone other than root or us could have written is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeError } from '../common/describe.js';
import { InvalidOptionError } from '../common/errors.js';
import { readTrustedFile } from '../process/trusted-file.js';
import { checkExecutable } from '../process/file-checks.js';
import { requireString } from '../common/validate.js';

/** A vhost-user backend as a QEMU descriptor file describes it. */
export interface VhostUserBackend {
  /** The descriptor file. */
  file: string;
  /** Its `type` (`fs` for virtio-fs back-ends). */
  type: string;
  /** The absolute path of the back-end program. */
  binary: string;
  /** Its `description`, if any. */
  description?: string;
  /** Its `features`, if it lists them (virtiofsd's descriptors do: `migrate-precopy`, `separate-options`). */
  features?: string[];
}

/**
 * The descriptor directories, from general to specific: /usr/share/qemu/vhost-user,
 * /etc/qemu/vhost-user, then $XDG_CONFIG_HOME/qemu/vhost-user (an absolute XDG_CONFIG_HOME,
 * else $HOME/.config; left out when neither is set).
 */
export function vhostUserDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = ['/usr/share/qemu/vhost-user', '/etc/qemu/vhost-user'];
  const xdg = env.XDG_CONFIG_HOME;
  const config = xdg && path.isAbsolute(xdg) ? xdg : env.HOME ? path.join(env.HOME, '.config') : undefined;
  if (config) dirs.push(path.join(config, 'qemu', 'vhost-user'));
  return dirs;
}

/** Descriptors hold a few hundred bytes. */
const MAX_DESCRIPTOR_BYTES = 64 * 1024;

/**
 * The vhost-user back-ends of `type` that QEMU's descriptors name, in the order a manager picks
 * them (by file name, the more specific directory's file replacing a less specific one of the
 * same name; an empty file hides it). Throws {@link UntrustedFileError} for a descriptor someone
 * other than root or us could have written, and an {@link InvalidOptionError} for `path` when
 * one is not a descriptor (not JSON, no type or binary), naming the file and the fix.
 */
export function vhostUserBackends(type = 'fs', env: NodeJS.ProcessEnv = process.env): VhostUserBackend[] {
  const byName = new Map<string, string>();
  for (const dir of vhostUserDirs(env)) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue; // missing (or unreadable): nothing there for us
    }
    for (const name of names) if (name.endsWith('.json')) byName.set(name, path.join(dir, name));
  }
  const out: VhostUserBackend[] = [];
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name)!;
    const data = readTrustedFile(file, { what: 'vhost-user descriptor', maxBytes: MAX_DESCRIPTOR_BYTES });
    if (data === null || data.length === 0) continue; // gone meanwhile, or an empty file that hides another
    const backend = parseDescriptor(file, data.toString('utf8'));
    if (backend.type === type) out.push(backend);
  }
  return out;
}

function parseDescriptor(file: string, text: string): VhostUserBackend {
  const bad = (why: string): never => {
    throw new InvalidOptionError(
      'path',
      `'${file}' is not a vhost-user backend descriptor: ${why}. Fix or remove it (or hide it with an empty file of ` +
        'the same name in a more specific directory), or set path to the virtiofsd to run',
    );
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    bad(`not JSON (${describeError(err)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) bad('not a JSON object');
  const d = json as Record<string, unknown>;
  if (typeof d.type !== 'string') bad('no "type"');
  if (typeof d.binary !== 'string' || !path.isAbsolute(d.binary)) bad('no absolute "binary"');
  const backend: VhostUserBackend = { file, type: d.type as string, binary: d.binary as string };
  if (typeof d.description === 'string') backend.description = d.description;
  if (Array.isArray(d.features)) backend.features = d.features.filter((f): f is string => typeof f === 'string');
  return backend;
}

/** What the legacy daemon prints for `--version` (`virtiofsd version 7.2.22 (…)`): a string constant of its binary. */
const LEGACY_BANNER = Buffer.from('virtiofsd version ');
/** Binaries larger than this are not scanned (virtiofsd builds are 1-10 MiB). */
const MAX_SCAN_BYTES = 256 * 1024 * 1024;
const legacyCache = new Map<string, boolean>();

/**
 * True when `binary` is the legacy C virtiofsd of QEMU ≤ 7.2, told without running it: its
 * program text holds the banner of its `--version` (`virtiofsd version `), which the Rust
 * virtiofsd (`virtiofsd 1.13.2`) does not. A wrapper script that runs the legacy daemon is not
 * recognised (false). Read once per path, inode, size and mtime.
 */
export function isLegacyVirtiofsd(binary: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(binary);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size > MAX_SCAN_BYTES) return false;
  const key = `${binary}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeMs}`;
  let legacy = legacyCache.get(key);
  if (legacy === undefined) {
    legacy = containsBytes(binary, LEGACY_BANNER);
    legacyCache.set(key, legacy);
  }
  return legacy;
}

/** Whether the file holds `needle`, read in 1 MiB chunks that overlap by the needle's length. */
function containsBytes(file: string, needle: Buffer): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const chunk = Buffer.alloc(1024 * 1024 + needle.length);
    let carry = 0;
    for (;;) {
      const n = fs.readSync(fd, chunk, carry, chunk.length - carry, null);
      if (n === 0) return false;
      const filled = carry + n;
      if (chunk.subarray(0, filled).includes(needle)) return true;
      carry = Math.min(needle.length - 1, filled);
      chunk.copy(chunk, 0, filled - carry, filled);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A virtiofsd to run, and how it was found. */
export interface FoundVirtiofsd {
  /** The program to run, as it was given or found (not resolved through symlinks). */
  binary: string;
  /** How it was found, for messages: `path`, `$VIRTIOFSD`, the descriptor file, or `a well-known path`. */
  from: string;
  /** {@link isLegacyVirtiofsd}; for a binary given by `path` or $VIRTIOFSD, read when first asked. */
  readonly legacy: boolean;
}

/** How to get the Rust virtiofsd, for messages. */
export const RUST_VIRTIOFSD_HOWTO =
  'Install the Rust virtiofsd (Debian 13: apt install virtiofsd; Fedora: dnf install virtiofsd; elsewhere a ' +
  'release of https://gitlab.com/virtio-fs/virtiofsd) - it is then found through its QEMU vhost-user ' +
  'descriptor - or set path to it';

/**
 * The error for the legacy daemon `binary` as uid `euid` (not root): it needs root, and how to
 * get the Rust one. For `option` (`path`, or `dialect` when the caller asked for the legacy one).
 */
export function legacyNeedsRoot(option: string, binary: string, euid: number, from?: string): InvalidOptionError {
  const why =
    `runs only as root: as uid ${euid} it fails before doing anything, even for --version (it drops its ` +
    'supplementary groups and builds its sandbox as root first)';
  const what =
    option === 'dialect'
      ? `'legacy' asks for the legacy C virtiofsd of QEMU 7.2 and older ('${binary}'), which ${why}. Leave dialect ` +
        `unset (or 'rust') and run the Rust virtiofsd.`
      : `'${binary}'${from ? ` (${from})` : ''} is the legacy C virtiofsd of QEMU 7.2 and older, which ${why}.`;
  return new InvalidOptionError(option, `${what} ${RUST_VIRTIOFSD_HOWTO}. Nothing was started`);
}

/**
 * A binary the caller named: whether it is the legacy daemon is read when first asked, since
 * only a start as a user asks (root runs either), and the scan's stat is one more system call
 * on every start of a Kata host.
 */
function named(binary: string, from: string): FoundVirtiofsd {
  let legacy: boolean | undefined;
  return {
    binary,
    from,
    get legacy(): boolean {
      return (legacy ??= isLegacyVirtiofsd(binary));
    },
  };
}

/**
 * The virtiofsd to run: `explicit` (the `path` option), else $VIRTIOFSD, else - the standard
 * way - the first back-end of type `fs` of QEMU's vhost-user descriptors ({@link vhostUserBackends}),
 * then the first of `wellKnown`, skipping programs that are not there. Among those found, the
 * first that is not the legacy C daemon wins: the legacy daemon (removed from QEMU in 8.0) is
 * taken only when it is all there is, and then only by root - as any other user it is refused
 * before anything runs, with an {@link InvalidOptionError} for `path` that says how to get the
 * Rust one. `explicit` and $VIRTIOFSD are taken as they
 * are (the caller checks them against the effective uid). Throws an {@link InvalidOptionError}
 * for `path` (or `$VIRTIOFSD`) when nothing is found, and what {@link vhostUserBackends} throws
 * for a descriptor it cannot trust or read.
 */
export function findVirtiofsd(
  explicit: string | undefined,
  wellKnown: readonly string[],
  euid: number,
  env: NodeJS.ProcessEnv = process.env,
): FoundVirtiofsd {
  if (explicit !== undefined) {
    checkExecutable('path', requireString('path', explicit));
    return named(explicit, 'path');
  }
  const fromEnv = env.VIRTIOFSD;
  if (fromEnv) {
    checkExecutable('$VIRTIOFSD', requireString('$VIRTIOFSD', fromEnv));
    return named(fromEnv, '$VIRTIOFSD');
  }
  const candidates: FoundVirtiofsd[] = [];
  const seen = new Set<string>();
  const consider = (binary: string, from: string): void => {
    let real: string;
    try {
      checkExecutable('path', binary);
      real = fs.realpathSync(binary);
    } catch {
      return; // not there, or not executable
    }
    if (seen.has(real)) return;
    seen.add(real);
    candidates.push({ binary, from, legacy: isLegacyVirtiofsd(binary) });
  };
  for (const b of vhostUserBackends('fs', env)) consider(b.binary, `named by ${b.file}`);
  for (const p of wellKnown) consider(p, 'a well-known path');
  const chosen = candidates.find((c) => !c.legacy) ?? candidates[0];
  if (!chosen) {
    throw new InvalidOptionError(
      'path',
      `not given, $VIRTIOFSD is not set, no QEMU vhost-user descriptor of type "fs" (in ${vhostUserDirs(env).join(', ')}) ` +
        `names a virtiofsd here, and none of ${wellKnown.join(', ')} exists. ${RUST_VIRTIOFSD_HOWTO}` +
        ' (as root, Debian 12: apt install qemu-system-common brings the legacy one)',
    );
  }
  if (chosen.legacy && euid !== 0)
    throw legacyNeedsRoot('path', chosen.binary, euid, `${chosen.from}, the only virtiofsd found`);
  return chosen;
}

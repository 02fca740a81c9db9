/**
 * Trusted files: the files the manager acts on or writes for itself - the CLI's state files, and
 * the seal key and lock file of its runtime directory - held to OpenSSH's StrictModes rules.
 * A trusted file is reached without a symlink or directory that anyone but root or us could
 * have changed, is a regular file of root's or ours that nobody else may write, and is small.
 * Reads never block and never read without end (a FIFO, a device, a symlink to /dev/zero fail
 * at once); writes never follow or truncate anything planted beforehand. Each refusal is an
 * {@link UntrustedFileError} that names the path at fault, its owner and mode, and the fix.
 *
 * The system calls are native.ts's (native/trusted_file.cc); this module resolves paths, fills
 * defaults and words the errors.
 */
import path from 'node:path';
import { InvalidOptionError, SystemError, UntrustedFileError } from '../common/errors.js';
import * as native from './native.js';

/** What {@link readTrustedFile} reads at most, by default: a state file holds a few hundred bytes. */
export const MAX_TRUSTED_FILE_BYTES = 64 * 1024;

/** Options every call here takes, for its error messages. */
export interface TrustedFileOptions {
  /**
   * What the file is to the caller - the option that named it (`--state`) or its role (`seal
   * key`): errors start with it, and a {@link SystemError} gets it as its `option`.
   */
  what?: string;
  /**
   * How to fix a path that is not trusted because of who could change it (owner, mode, a sticky
   * directory), ending the message. Default: keep such files in a directory only you (or root)
   * can write, such as /run/virtiofs-daemon (as root) or $XDG_RUNTIME_DIR.
   */
  fix?: string;
}

/**
 * The file `file` (resolved against the working directory) whole, or null when there is no
 * such file in its (trusted) directory. Throws {@link UntrustedFileError} when it, or anything
 * on the way to it, is not to be trusted, or when it holds more than `maxBytes` (never a partial
 * read); a {@link SystemError} for other failures (its directory is missing: `ENOENT`).
 */
export function readTrustedFile(
  file: string,
  options: TrustedFileOptions & {
    /**
     * Refuse a file larger than this.
     * @default MAX_TRUSTED_FILE_BYTES (64 KiB)
     */
    maxBytes?: number;
  } = {},
): Buffer | null {
  const maxBytes = options.maxBytes ?? MAX_TRUSTED_FILE_BYTES;
  return trusted(file, options, (abs) => native.readTrustedFile(abs, maxBytes), { maxBytes });
}

/**
 * Write `data` to `file` atomically: a new file of a random name beside it, written whole with
 * exactly `mode`, `fsync`ed and renamed over `file` (see native.ts {@link native.writeTrustedFile}).
 * Nothing planted at any name is followed or truncated; on failure `file` is as it was and no
 * temporary file is left. Returns true; with `exclusive`, false (and nothing written) when
 * `file` exists already, which is then never replaced. Throws as {@link readTrustedFile}; an
 * existing `file` that is not a regular file of root's or ours is an {@link UntrustedFileError}.
 */
export function writeTrustedFile(
  file: string,
  data: Buffer | string,
  options: TrustedFileOptions & {
    /**
     * The file's mode, exactly (the umask does not apply).
     * @default 0o600
     */
    mode?: number;
    /**
     * Publish without replacing anything (`linkat`): when `file` exists, return false.
     * @default false
     */
    exclusive?: boolean;
  } = {},
): boolean {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const mode = options.mode ?? 0o600;
  return trusted(file, options, (abs) => native.writeTrustedFile(abs, buf, mode, { exclusive: options.exclusive }));
}

/**
 * Remove `file` if it is a regular file of root's or ours in a trusted directory: true when
 * removed, false when nothing was there. Anything else there is left alone and is an
 * {@link UntrustedFileError}.
 */
export function removeTrustedFile(file: string, options: TrustedFileOptions = {}): boolean {
  return trusted(file, options, (abs) => native.removeTrustedFile(abs));
}

/**
 * The private directory `dir`: made (mode 0700) when `create` and missing, then checked - a
 * directory, not a symlink, owned by our euid, mode exactly 0700, in a trusted parent. One that
 * fails is an {@link UntrustedFileError} naming its owner and mode, and is never changed (no
 * chmod behind your back). True when this call made it. Without `create`, a missing `dir` is a
 * {@link SystemError} `ENOENT`.
 */
export function makePrivateDir(
  dir: string,
  options: TrustedFileOptions & {
    /**
     * Make it when it is missing.
     * @default true
     */
    create?: boolean;
  } = {},
): boolean {
  return trusted(dir, options, (abs) => native.makePrivateDir(abs, { create: options.create ?? true }), {
    directory: true,
  });
}

/**
 * Open the trusted file `file` read-write for byte locks (created 0600 when missing), for this
 * environment: see native.ts {@link native.openLockFile}. Throws as {@link readTrustedFile}.
 */
export function openLockFile(file: string, options: TrustedFileOptions = {}): number {
  return trusted(file, options, (abs) => native.openLockFile(abs));
}

/** What the message of a refusal needs beyond the refusal itself. */
interface Expected {
  /** The limit of a read. */
  maxBytes?: number;
  /** The path names a directory (a private one), not a file. */
  directory?: boolean;
}

/** Run `op` on `file` made absolute, with its errors typed and worded for `options.what`. */
function trusted<T>(file: string, options: TrustedFileOptions, op: (abs: string) => T, expected: Expected = {}): T {
  if (typeof file !== 'string' || file === '' || file.includes('\0')) {
    throw new InvalidOptionError(options.what ?? 'path', `is ${JSON.stringify(file)}, not a path`);
  }
  const abs = path.resolve(file);
  try {
    return op(abs);
  } catch (err) {
    const refusal = native.trustRefusal(err);
    if (refusal) {
      const fields = { path: abs, ...refusal };
      throw new UntrustedFileError(fields, untrustedMessage(fields, options, expected), { cause: err });
    }
    throw options.what ? SystemError.forOption(options.what, err) : err;
  }
}

/** "0755" */
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** What the file type bits of `mode` say, as "a FIFO". */
function typeName(mode: number): string {
  const types: Record<number, string> = {
    0o010000: 'a FIFO',
    0o020000: 'a character device',
    0o040000: 'a directory',
    0o060000: 'a block device',
    0o100000: 'a regular file',
    0o120000: 'a symbolic link',
    0o140000: 'a socket',
  };
  return types[mode & 0o170000] ?? 'of an unknown type';
}

/** The default fix: where such files belong for whoever runs this. */
function defaultFix(): string {
  const where = process.geteuid?.() === 0 ? '/run/virtiofs-daemon' : '$XDG_RUNTIME_DIR';
  return `Keep such files in a directory that only you (or root) can write, such as ${where}`;
}

/** One line: what is refused, which path is at fault with its owner and mode, and the fix. */
function untrustedMessage(
  r: native.TrustRefusal & { path: string },
  options: TrustedFileOptions,
  expected: Expected,
): string {
  const euid = process.geteuid?.() ?? -1;
  const self = r.component === r.path;
  const isDir = (r.mode & 0o170000) === 0o040000;
  const which = self
    ? 'it'
    : r.component === path.dirname(r.path)
      ? `its directory '${r.component}'`
      : `${isDir ? 'the directory ' : ''}'${r.component}' on the way to it`;
  const ids = `owner uid ${r.owner}, mode ${octal(r.mode)}`;
  // A private directory must be ours alone; a file or a directory on the way may be root's too.
  const owners = self && expected.directory ? `uid ${euid}` : `root or uid ${euid}`;
  let problem: string;
  let remedy = options.fix ?? defaultFix();
  switch (r.reason) {
    case 'owner':
      problem = `${which} is owned by uid ${r.owner} (mode ${octal(r.mode)}), not by ${owners}, so that user could have written or replaced it`;
      break;
    case 'writable':
      problem = `${which} is writable by others than its owner (${ids})${isDir ? ' and not sticky' : ''}, so they could have written or replaced it`;
      break;
    case 'foreign-entry':
      problem = `${which} belongs to uid ${r.owner} (mode ${octal(r.mode)}) in a sticky directory that anyone may add to, so that user could have planted it`;
      break;
    case 'mode':
      problem = `it has mode ${octal(r.mode)} (owner uid ${r.owner}), not 0700: it is not private`;
      break;
    case 'type':
      problem = `${which} is ${typeName(r.mode)} (${ids}), not ${expected.directory ? 'a directory' : 'a regular file'}`;
      remedy = `Remove it, or name ${expected.directory ? 'another directory' : 'a file that virtiofs-daemon wrote'}`;
      break;
    case 'size':
      problem = `it holds ${r.size ?? 'more'} bytes, more than the ${expected.maxBytes ?? MAX_TRUSTED_FILE_BYTES} such a file may hold`;
      remedy = 'Remove it, or name a file that virtiofs-daemon wrote';
      break;
  }
  return `${options.what ? `${options.what}: ` : ''}refusing '${r.path}': ${problem}. ${remedy}`;
}

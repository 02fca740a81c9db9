/**
 * Checks that ask the file system, shared by both daemons: the binary, the shared directory, the
 * socket's directory. Each throws an {@link InvalidOptionError} naming the option, what is wrong
 * and how to fix it, before anything is created. The type checks are one statx each through the
 * addon (fileMode), not through the thread pool.
 */
import fs, { constants } from 'node:fs';
import path from 'node:path';
import { InvalidOptionError, SystemError } from '../common/errors.js';
import { fileMode } from './native.js';
import { requireSocketPath, requireString } from '../common/validate.js';

/** An existing regular file that we may execute. */
export function checkExecutable(option: string, file: string): void {
  const mode = modeOr(
    file,
    (err) => new InvalidOptionError(option, `'${file}' ${describeStatError(err)}`, { cause: err }),
  );
  if ((mode & S_IFMT) !== S_IFREG) throw new InvalidOptionError(option, `'${file}' is ${kind(mode)}, not a program`);
  try {
    fs.accessSync(file, constants.X_OK);
  } catch (err) {
    throw new InvalidOptionError(option, `'${file}' is not executable; make it so (chmod +x) or point to the daemon`, {
      cause: err,
    });
  }
}

/** An existing directory. */
export function checkDirectory(option: string, dir: string): void {
  const mode = modeOr(
    dir,
    (err) => new InvalidOptionError(option, `'${dir}' ${describeStatError(err)}`, { cause: err }),
  );
  if ((mode & S_IFMT) !== S_IFDIR) throw new InvalidOptionError(option, `'${dir}' is ${kind(mode)}, not a directory`);
}

/** A socket path that fits sun_path, in a directory that exists. */
export function checkSocketPath(option: string, socketPath: string): void {
  requireSocketPath(option, socketPath);
  const dir = path.dirname(socketPath);
  const mode = modeOr(
    dir,
    (err) =>
      new InvalidOptionError(option, `directory '${dir}' ${describeStatError(err)}; create it first`, { cause: err }),
  );
  if ((mode & S_IFMT) !== S_IFDIR) throw new InvalidOptionError(option, `'${dir}' is ${kind(mode)}, not a directory`);
}

/**
 * The daemon binary, checked to be an executable file: `explicit`, else $`envVar`, else the
 * first executable well-known path. Errors name where the path came from (`option` or
 * `$envVar`); `install` says how to get a binary when none is found.
 */
export function resolveBinary(
  option: string,
  explicit: string | undefined,
  envVar: string,
  wellKnown: string[],
  install: string,
): string {
  if (explicit !== undefined) {
    checkExecutable(option, requireString(option, explicit));
    return explicit;
  }
  const fromEnv = process.env[envVar];
  if (fromEnv) {
    checkExecutable(`$${envVar}`, requireString(`$${envVar}`, fromEnv));
    return fromEnv;
  }
  for (const candidate of wellKnown) {
    try {
      checkExecutable(option, candidate);
      return candidate;
    } catch {
      // Not there, or not executable: try the next one.
    }
  }
  throw new InvalidOptionError(
    option,
    `not given, $${envVar} is not set, and none of ${wellKnown.join(', ')} exists. ${install}`,
  );
}

/**
 * The mode of `file` from stat(2), called directly (native.fileMode), not through the thread
 * pool: a stat of a local path takes microseconds, a thread-pool round trip tens to hundreds (it
 * waits for the event loop's next turn), and start() makes several; nor through fs.statSync,
 * which makes a Stats object with four Dates for a type check. Failures become `fail(err)`.
 */
function modeOr(file: string, fail: (err: NodeJS.ErrnoException) => Error): number {
  try {
    return fileMode(file);
  } catch (err) {
    // Only what stat(2) answered is about the file; a missing addon, say, is not.
    if (!(err instanceof SystemError)) throw err;
    throw fail(err);
  }
}

function describeStatError(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return 'does not exist';
  if (err.code === 'ENOTDIR') return 'does not exist (a parent is not a directory)';
  if (err.code === 'EACCES') return 'cannot be reached (permission denied on a parent directory)';
  return `cannot be examined (${err.code ?? err.message})`;
}

const { S_IFMT, S_IFREG, S_IFDIR, S_IFSOCK, S_IFIFO } = constants;

function kind(mode: number): string {
  const type = mode & S_IFMT;
  if (type === S_IFDIR) return 'a directory';
  if (type === S_IFREG) return 'a regular file';
  if (type === S_IFSOCK) return 'a socket';
  if (type === S_IFIFO) return 'a FIFO';
  return 'a device or special file';
}

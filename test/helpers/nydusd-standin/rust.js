'use strict';
/**
 * Rust-isms: how the real daemon prints strings, OS errors, durations and times (`{:?}` of a
 * &str, io::Error's Display and Debug, Duration's Debug, nydus's time_human_readable), so that
 * the stand-in's texts match nydusd's byte for byte.
 */

/** Rust `{:?}` of a &str. */
function dbg(s) {
  let out = '"';
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/** errno -> [Rust io::ErrorKind Debug name, strerror text]. */
const ERRNO = {
  ENOENT: [2, 'NotFound', 'No such file or directory'],
  EACCES: [13, 'PermissionDenied', 'Permission denied'],
  EPERM: [1, 'PermissionDenied', 'Operation not permitted'],
  ENOTDIR: [20, 'NotADirectory', 'Not a directory'],
  EISDIR: [21, 'IsADirectory', 'Is a directory'],
  EINVAL: [22, 'InvalidInput', 'Invalid argument'],
  EADDRINUSE: [98, 'AddrInUse', 'Address already in use'],
  ENAMETOOLONG: [36, 'InvalidFilename', 'File name too long'],
  ELOOP: [40, 'FilesystemLoop', 'Too many levels of symbolic links'],
  EROFS: [30, 'ReadOnlyFilesystem', 'Read-only file system'],
  ENOSPC: [28, 'StorageFull', 'No space left on device'],
};
/** An error as [errno, Rust ErrorKind name, strerror text]; unknown codes are EIO-like `Other`. */
function errnoOf(e) {
  return (e && Object.hasOwn(ERRNO, e.code) && ERRNO[e.code]) || [5, 'Other', (e && e.message) || 'Input/output error'];
}
/** Rust io::Error Display for an OS error. */
function ioDisplay(e) {
  const [code, , text] = errnoOf(e);
  return `${text} (os error ${code})`;
}
/** Rust io::Error Debug for an OS error. */
function ioDebug(e) {
  const [code, kind, text] = errnoOf(e);
  return `Os { code: ${code}, kind: ${kind}, message: ${dbg(text)} }`;
}

/** Rust Duration Debug. */
function durDbg(ns) {
  const trim = (x) => String(x).replace(/\.?0+$/, '');
  if (ns >= 1e9) return `${trim((ns / 1e9).toFixed(9))}s`;
  if (ns >= 1e6) return `${trim((ns / 1e6).toFixed(6))}ms`;
  if (ns >= 1e3) return `${trim((ns / 1e3).toFixed(3))}µs`;
  return `${ns}ns`;
}

/** nydus's time_human_readable of d: UTC, nanoseconds (extraNanos past d's millisecond), `+00:00:00`. */
function timeHumanReadable(d = new Date(), extraNanos = 0) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  let frac = String(d.getUTCMilliseconds() * 1e6 + extraNanos)
    .padStart(9, '0')
    .replace(/0+$/, '');
  if (frac === '') frac = '0';
  return (
    `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${frac} +00:00:00`
  );
}

module.exports = { dbg, ioDisplay, ioDebug, durDbg, timeHumanReadable };

/**
 * TEMPORARY STAND-IN (branch trust-handle) for the runtime directory of branch trust-files,
 * which replaces this file at the merge: same exports, same meaning.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const locks = new Set<number>();

export function runtimeDir(): string {
  const dir =
    process.geteuid?.() === 0 ? '/run/virtiofs-daemon' : path.join(`/tmp/virtiofs-daemon-${process.geteuid?.()}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

let key: Buffer | undefined;
export function sealKey(): Buffer {
  if (key) return key;
  const file = path.join(runtimeDir(), 'seal.key');
  try {
    key = fs.readFileSync(file);
  } catch {
    fs.writeFileSync(file, crypto.randomBytes(32), { mode: 0o600, flag: 'wx' });
    key = fs.readFileSync(file);
  }
  return key;
}

export function lockDaemon(pid: number): boolean {
  locks.add(pid);
  return true;
}
export function unlockDaemon(pid: number): void {
  locks.delete(pid);
}
export function daemonLockHeld(pid: number): boolean {
  return locks.has(pid);
}

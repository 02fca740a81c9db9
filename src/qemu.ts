/**
 * The QEMU options that attach a guest to a vhost-user-fs back-end (virtiofsd, or nydusd's
 * vhost-user socket), as an argv array that goes straight to `child_process.spawn`:
 *
 *   -chardev socket,id=vfs0,path=SOCKET
 *   -device vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=TAG,id=vfs0
 *   -object memory-backend-memfd,id=mem,size=MEMORY,share=on     (memoryBackend: true)
 *   -numa node,memdev=mem
 *   -m MEMORY
 *
 * vhost-user needs the guest's whole RAM shared with the back-end (it maps it to reach the
 * virtqueues), hence the memfd backend with share=on as the guest's only memory. Every value
 * is escaped the way QEMU's option syntax wants (a literal `,` is written `,,`); each array
 * element is one argument, so no shell quoting is involved.
 */
import { describeValue } from './describe.js';
import { InvalidOptionError } from './errors.js';
import { readOptions, rejectUnknownOptions, requireBoolean, requireOptionsObject } from './options.js';
import { requireSocketPath, requireString } from './validate.js';

/** What {@link qemuArgs} takes. */
export interface QemuArgsOptions {
  /** The back-end's vhost-user socket, as QEMU will open it (at most 107 bytes). */
  socketPath: string;
  /**
   * The mount tag the guest names (`mount -t virtiofs TAG /mnt`): 1 to
   * {@link MAX_TAG_BYTES} bytes of UTF-8, the size of virtio-fs's config field.
   */
  tag: string;
  /**
   * The guest's RAM, used for both `-m` and the shared memory backend: a QEMU size with its
   * unit (`'512M'`, `'2G'`; K, M, G, T, P, binary), or a number of bytes that is a whole
   * number of MiB. Required with `memoryBackend`; must be left out without it. A bare
   * `'2048'` is refused: `-m` would read it as MiB but the backend's `size=` as bytes.
   * @default none (required with memoryBackend)
   */
  memory?: string | number;
  /**
   * Add the shared memory backend and `-m` (`-object memory-backend-memfd,…,share=on`,
   * `-numa node,memdev=…`, `-m`). Leave it out (`false`) for a second share of the same VM, or
   * when the VM sets up shared memory itself: then only `-chardev` and `-device` are returned.
   * @default true
   */
  memoryBackend?: boolean;
  /**
   * The id of the `-chardev` and of the `-device` (for `device_del`): a letter, then letters,
   * digits, `-`, `.` or `_`, as QEMU wants ids. Give each share of one VM its own.
   * @default 'vfs0'
   */
  id?: string;
  /**
   * The id of the memory backend (`-object …,id=`, `-numa node,memdev=`). Only with memoryBackend.
   * @default 'mem'
   */
  memoryId?: string;
  /**
   * The virtqueue size of the device: a power of two from 1 to 1024 (QEMU's limit).
   * @default 1024
   */
  queueSize?: number;
}

/** What a started daemon's `qemuArgs()` takes: {@link QemuArgsOptions} less the socket, which is its own. */
export type DaemonQemuArgsOptions = Omit<QemuArgsOptions, 'socketPath'>;

/** virtio-fs's `tag` config field is 36 bytes; a shorter tag is NUL-padded, a longer one refused by QEMU. */
export const MAX_TAG_BYTES = 36;

/** QEMU's VIRTQUEUE_MAX_SIZE. */
const MAX_QUEUE_SIZE = 1024;

const KEYS = ['socketPath', 'tag', 'memory', 'memoryBackend', 'id', 'memoryId', 'queueSize'] as const;

/** QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'. */
const QEMU_ID = /^[A-Za-z][A-Za-z0-9._-]*$/;

const MIB = 1024 * 1024;

const OWN_SOCKET = (what: string): string =>
  `${what}() uses the daemon's own socket; leave socketPath out (or call qemuArgs() for another socket)`;

/** A value inside a QEMU option (`key=value,key=value`): a literal comma is doubled. */
export function qemuOptionValue(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * The QEMU options that attach a guest to the vhost-user-fs back-end at `socketPath`, as an
 * argv array for `spawn` (see the module comment for the shape). Throws an
 * {@link InvalidOptionError} naming the option at fault: an empty or too long `tag`, a
 * `memory` that is not a QEMU size, an id QEMU would refuse, a queue size that is not a power
 * of two up to 1024, a NUL byte anywhere, an unknown option.
 */
export function qemuArgs(options: QemuArgsOptions): string[] {
  return buildQemuArgs('qemuArgs', requireOptionsObject('qemuArgs', options));
}

/**
 * {@link qemuArgs} for a daemon's own socket: `what` names the method in errors; `socketPath`
 * among the options is refused (the daemon has its own).
 */
export function qemuArgsForSocket(what: string, socketPath: string, options: unknown): string[] {
  return buildQemuArgs(what, requireOptionsObject(what, options), socketPath);
}

function buildQemuArgs(what: string, options: object, ownSocket?: string): string[] {
  rejectUnknownOptions(`${what}()`, options, ownSocket === undefined ? KEYS : KEYS.filter((k) => k !== 'socketPath'), {
    refuse: ownSocket === undefined ? {} : { socketPath: OWN_SOCKET(what) },
  });
  const o = readOptions(options, KEYS);
  const socketPath = requireSocketPath('socketPath', ownSocket ?? o.socketPath);
  const tag = requireTag(o.tag);
  const id = requireId('id', o.id, 'vfs0');
  const queueSize = requireQueueSize(o.queueSize);
  const memoryBackend = requireBoolean('memoryBackend', o.memoryBackend, true);
  const v = qemuOptionValue;
  const args = [
    '-chardev',
    `socket,id=${v(id)},path=${v(socketPath)}`,
    '-device',
    `vhost-user-fs-pci,queue-size=${queueSize},chardev=${v(id)},tag=${v(tag)},id=${v(id)}`,
  ];
  if (!memoryBackend) {
    for (const key of ['memory', 'memoryId'] as const) {
      if (o[key] !== undefined) {
        throw new InvalidOptionError(
          key,
          'is for the memory backend, which memoryBackend: false leaves out; drop one or the other',
        );
      }
    }
    return args;
  }
  const memory = requireMemory(o.memory);
  const memoryId = requireId('memoryId', o.memoryId, 'mem');
  args.push(
    '-object',
    `memory-backend-memfd,id=${v(memoryId)},size=${v(memory)},share=on`,
    '-numa',
    `node,memdev=${v(memoryId)}`,
    '-m',
    memory,
  );
  return args;
}

function requireTag(value: unknown): string {
  const tag = requireString('tag', value);
  const bytes = Buffer.byteLength(tag);
  if (bytes > MAX_TAG_BYTES) {
    throw new InvalidOptionError(
      'tag',
      `${describeValue(tag)} is ${bytes} bytes; virtio-fs holds a tag of at most ${MAX_TAG_BYTES}. Use a shorter tag`,
    );
  }
  return tag;
}

function requireId(option: string, value: unknown, dflt: string): string {
  if (value === undefined) return dflt;
  if (typeof value !== 'string' || !QEMU_ID.test(value)) {
    throw new InvalidOptionError(
      option,
      `${describeValue(value)} is not a QEMU id; use a letter followed by letters, digits, '-', '.' or '_' (e.g. 'vfs1')`,
    );
  }
  return value;
}

function requireQueueSize(value: unknown): number {
  if (value === undefined) return MAX_QUEUE_SIZE;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > MAX_QUEUE_SIZE ||
    (value & (value - 1)) !== 0
  ) {
    throw new InvalidOptionError(
      'queueSize',
      `${describeValue(value)} is not a virtqueue size; use a power of two from 1 to ${MAX_QUEUE_SIZE}`,
    );
  }
  return value;
}

/** A QEMU size that means the same to `-m` (whose bare numbers are MiB) and to `size=` (bytes). */
function requireMemory(value: unknown): string {
  const fix = "give the guest's RAM with its unit, e.g. '512M' or '2G' (or a number of bytes)";
  if (value === undefined) {
    throw new InvalidOptionError(
      'memory',
      `is required with the memory backend (vhost-user shares all guest RAM with the daemon, so -m is set here too); ${fix}, or pass memoryBackend: false`,
    );
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0 || value % MIB !== 0) {
      throw new InvalidOptionError(
        'memory',
        `${describeValue(value)} bytes is not a whole, positive number of MiB; ${fix}`,
      );
    }
    // In the largest unit that keeps it whole: 2**30 is '1G', as a reader would write it.
    let n = value / MIB;
    let unit = 'M';
    for (const larger of ['G', 'T', 'P']) {
      if (n % 1024 !== 0) break;
      n /= 1024;
      unit = larger;
    }
    return `${n}${unit}`;
  }
  if (typeof value !== 'string')
    throw new InvalidOptionError('memory', `${describeValue(value)} is not a size; ${fix}`);
  if (/^\d+$/.test(value)) {
    throw new InvalidOptionError(
      'memory',
      `${describeValue(value)} has no unit, which QEMU reads as MiB in -m but as bytes in the memory backend; write '${value}M' for MiB, or pass the number of bytes as a number`,
    );
  }
  const m = /^([1-9]\d*)([KMGTP])$/i.exec(value);
  if (!m || !Number.isSafeInteger(Number(m[1]))) {
    throw new InvalidOptionError('memory', `${describeValue(value)} is not a QEMU size; ${fix}`);
  }
  return `${m[1]}${m[2].toUpperCase()}`;
}

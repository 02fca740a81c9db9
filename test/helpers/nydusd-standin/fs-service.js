'use strict';
/**
 * The filesystem service: fuse-backend-rs's pseudo filesystem and mountpoint table (enough to
 * walk paths as it does) and FsService's mount, remount and umount with nydusd's error values.
 * Follows service/src/fs_service.rs, service/src/lib.rs and fuse-backend-rs pseudo_fs.rs.
 */
const fs = require('node:fs');
const path = require('node:path');
const { dbg, ioDisplay, ioDebug, timeHumanReadable } = require('./rust');
const { info, debug, panicAbort } = require('./log');
const { knob } = require('./env');

/** fuse-backend-rs PseudoFs + Vfs mountpoint table, enough to reproduce path walking. */
class PseudoFs {
  constructor() {
    this.next = 2;
    this.root = { ino: 1, parent: null, name: '/', children: new Map() };
    this.root.parent = this.root;
    this.mounts = new Map(); // ino -> backend
  }

  static components(p) {
    // Rust Path::components on a rooted path: RootDir, then Normal/ParentDir; `.` and empty
    // components vanish.
    return p.split('/').filter((c) => c !== '' && c !== '.');
  }

  /** path_walk: EINVAL without a root, null when a component is missing. */
  walk(p) {
    if (!p.startsWith('/')) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
    let node = this.root;
    for (const c of PseudoFs.components(p)) {
      if (c === '..') {
        node = node.parent;
        continue;
      }
      const child = node.children.get(c);
      if (!child) return null;
      node = child;
    }
    return node;
  }

  /** mount: creates the pseudo directories on the way. */
  mkpath(p) {
    if (!p.startsWith('/')) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
    let node = this.root;
    for (const c of PseudoFs.components(p)) {
      if (c === '..') {
        node = node.parent;
        continue;
      }
      let child = node.children.get(c);
      if (!child) {
        child = { ino: this.next++, parent: node, name: c, children: new Map() };
        node.children.set(c, child);
      }
      node = child;
    }
    return node;
  }
}

const vfs = new PseudoFs();
/** FsBackendCollection: keyed by the mountpoint string exactly as received. */
const backendCollection = new Map();

/** A refused mount, umount or remount, carrying the Debug text of its DaemonErrorKind. */
class MountError extends Error {
  /** @param kind Rust Debug of the DaemonErrorKind, e.g. `Other("...")` */
  constructor(kind) {
    super(kind);
    this.kind = kind;
  }
}
/** DaemonErrorKind::Other(text). */
const other = (text) => new MountError(`Other(${dbg(text)})`);
/** The error of a mountpoint the VFS cannot walk. */
const vfsPathWalkError = (e) => other(`VFS failed to handle request, PathWalk(${ioDebug(e)})`);

/** The backend type of ApiMountCmd.fs_type ('rafs' or a passthrough alias); refuses others. */
function parseFsType(s) {
  if (s === 'rafs') return 'Rafs';
  if (s === 'passthrough' || s === 'passthroughfs' || s === 'passthrough_fs') return 'PassthroughFs';
  throw other(`invalid argument \`only 'rafs' and 'passthrough_fs' are supported, but ${s} was specified\``);
}

/** ConfigV2::from_str, approximated: JSON text shaped like a v2 or a v1 RAFS config. */
function parseRafsConfig(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
  const okV2 = isObj(v) && v.version === 2 && isObj(v.backend) && typeof v.backend.type === 'string';
  const okV1 = isObj(v) && isObj(v.device) && isObj(v.device.backend) && typeof v.device.backend.type === 'string';
  if (!okV2 && !okV1) {
    throw other('RAFS failed to handle request, Failed to load config: failed to parse configuration information`');
  }
  return v;
}

/** ConfigV2::clone_without_secrets, approximated. */
function withoutSecrets(cfg) {
  const SECRET = /^(auth|registry_token|access_key_id|access_key_secret|password|token|secret.*)$/i;
  const walk = (x) => {
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') {
      const o = {};
      for (const [k, val] of Object.entries(x))
        o[k] = SECRET.test(k) ? (typeof val === 'string' ? '' : null) : walk(val);
      return o;
    }
    return x;
  };
  return walk(cfg);
}

/** A mount source as the daemon opens it: relative to its working directory; "" is ENOENT. */
function resolveSource(p) {
  // open("") is ENOENT, not the working directory.
  if (p === '') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return path.isAbsolute(p) ? p : path.resolve(process.cwd(), p);
}

/** Panic with panic=abort: log_panics writes the message at ERROR, then SIGABRT. */
/** RafsSuper::load_from_file, approximated: the file must open and carry a RAFS v5/v6 magic. */
function checkBootstrap(source) {
  const fail = (io) => other(`RAFS failed to handle request, Failed to fill superBlock: ${io}\``);
  if (source.includes('\0')) throw fail('file name contained an unexpected NUL byte');
  let fd;
  try {
    fd = fs.openSync(resolveSource(source), 'r');
  } catch (e) {
    throw fail(ioDisplay(e));
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw fail(ioDisplay({ code: 'EISDIR' }));
    const buf = Buffer.alloc(1028);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const v5 = n >= 4 && buf.readUInt32LE(0) === 0x52414653; // "SFAR" on disk
    const v6 = n >= 1028 && buf.readUInt32LE(1024) === 0xe0f5e1e2; // EROFS superblock
    if (!v5 && !v6) throw fail(ioDisplay({ code: 'EINVAL' }));
  } finally {
    fs.closeSync(fd);
  }
}

/** PassthroughFs::new + import + Vfs::mount's root lookup. */
function checkPassthroughSource(source) {
  if (source.includes('\0')) {
    // CString::new(root_dir).expect(...) in PassthroughFs::import.
    panicAbort(
      'api-server',
      `CString::new failed: NulError(${source.indexOf('\0')}, [...])`,
      '/fuse-backend-rs-0.11.0/src/passthrough/mod.rs:0:0',
    );
  }
  let st;
  try {
    st = fs.lstatSync(resolveSource(source)); // open(O_PATH | O_NOFOLLOW)
  } catch (e) {
    throw other(`passthroughfs failed to handle request, ${ioDisplay(e)}`);
  }
  if (!st.isDirectory()) {
    // BackendFileSystem::mount looks up "." under the root fd: ENOTDIR for files/symlinks.
    throw other(`VFS failed to handle request, Mount(${ioDebug({ code: 'ENOTDIR' })})`);
  }
}

/** Refuse a prefetch list with a path that is not absolute. */
function validatePrefetch(list) {
  if (list == null) return;
  for (const p of list) {
    if (!p.startsWith('/')) throw other('invalid prefetch file list');
  }
}

/** nydus-utils metrics.rs (v2.2.3): StatsFop::Max, BLOCK_READ_SIZES_MAX, READ_LATENCY_RANGE_MAX. */
const STATS_FOPS = 15;
const BLOCK_READ_SIZES = 8;
const READ_LATENCY_RANGES = 8;

/**
 * FS_METRICS: one FsIoStats per RAFS instance, keyed by its id, which is the mountpoint
 * (Rafs::new(cfg, &cmd.mountpoint, ..) -> FsIoStats::new(id)). FsIoStats::new inserts into the
 * map (a new mount at the same id replaces the old one) and nothing ever removes an entry:
 * after an umount the counters still answer.
 */
const fsMetrics = new Map();

/** FsIoStats::new(id) after init(): its serde field order, every counter 0 (or the test knob's). */
function newFsIoStats(id) {
  const zeros = (n) => new Array(n).fill(0);
  const stats = {
    files_account_enabled: false,
    access_pattern_enabled: false,
    record_latest_read_files_enabled: false,
    measure_latency: true,
    id,
    nr_opens: 0,
    data_read: 0,
    block_count_read: zeros(BLOCK_READ_SIZES),
    fop_hits: zeros(STATS_FOPS),
    fop_errors: zeros(STATS_FOPS),
    fop_cumulative_latency_total: zeros(STATS_FOPS),
    read_latency_dist: zeros(READ_LATENCY_RANGES),
  };
  for (const [k, v] of Object.entries(knob.fsMetrics)) {
    if (!(k in stats) || k === 'id') continue;
    stats[k] = Array.isArray(stats[k]) ? stats[k].map((z, i) => v[i] ?? z) : v;
  }
  return stats;
}

/** FsService::mount. Throws MountError. */
function doMount(mountpoint, cmd) {
  const fsType = parseFsType(cmd.fs_type);
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  if (node && vfs.mounts.has(node.ino)) throw other('object or filesystem already exists');
  validatePrefetch(cmd.prefetch_files);
  let config = null;
  if (fsType === 'Rafs') {
    config = parseRafsConfig(cmd.config);
    checkBootstrap(cmd.source);
    fsMetrics.set(mountpoint, newFsIoStats(mountpoint));
  } else {
    checkPassthroughSource(cmd.source);
  }
  info(fsType === 'Rafs' ? 'RAFS filesystem imported' : 'PassthroughFs imported');
  const target = vfs.mkpath(mountpoint); // over-mounts silently, as Vfs::mount does
  vfs.mounts.set(target.ino, { fsType, source: cmd.source, mountpoint });
  info(`${fsType} filesystem mounted at ${mountpoint}`);
  backendCollection.set(mountpoint, {
    backend_type: fsType,
    mountpoint,
    mounted_time: timeHumanReadable(new Date(), Math.floor(Math.random() * 1e6)),
    config: config === null ? null : withoutSecrets(config),
  });
}

/** FsService::remount (RAFS only). */
function doRemount(mountpoint, cmd) {
  const fsType = parseFsType(cmd.fs_type);
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  const m = node && vfs.mounts.get(node.ino);
  if (!m) throw other("object or filesystem doesn't exist");
  try {
    fs.accessSync(resolveSource(cmd.source), fs.constants.R_OK);
  } catch (e) {
    throw other(`RAFS failed to handle request, ${ioDisplay(e)}`);
  }
  if (m.fsType !== 'Rafs') throw other('filesystem type mismatch, expect RAFS');
  const config = parseRafsConfig(cmd.config);
  checkBootstrap(cmd.source);
  m.source = cmd.source;
  backendCollection.set(mountpoint, {
    backend_type: fsType,
    mountpoint,
    mounted_time: timeHumanReadable(),
    config: withoutSecrets(config),
  });
}

/** FsService::umount. */
function doUmount(mountpoint) {
  let node;
  try {
    node = vfs.walk(mountpoint);
  } catch (e) {
    throw vfsPathWalkError(e);
  }
  if (!node || !vfs.mounts.has(node.ino)) throw other("object or filesystem doesn't exist");
  vfs.mounts.delete(node.ino);
  backendCollection.delete(mountpoint);
  debug('try to gc unused blobs', '/src/fs_service.rs:0');
}

module.exports = { vfs, backendCollection, fsMetrics, MountError, doMount, doRemount, doUmount };

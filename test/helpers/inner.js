'use strict';
/**
 * A Node process that the native tests start with a hand-made fd table (util.js runInner), to
 * run the library from there: `node inner.js <scenario> <json args>`. Results go, as JSON, to
 * args.result (stdout and stdin may be part of the arranged fd table).
 *
 * Node opens everything close-on-exec, but fds a parent placed in our table (stdio
 * entries of child_process.spawn) arrive without it: that is how the tests get a process
 * holding hundreds of fds that a careless spawn would leak. Node's startup marks fds 0-15,
 * and any open fds right after them, close-on-exec (uv_disable_stdio_inheritance): leaky
 * fds have to sit beyond a gap above 15.
 */
const fs = require('node:fs');

const [scenario, json] = process.argv.slice(2);
if (scenario === undefined) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const args = JSON.parse(json);
const { listenUnix, spawn } = require('../../dist/process/native.js');
const { O_CLOEXEC, fdFlags, probePath, readReport } = require('./util.js');

/** Every open fd above 2 without O_CLOEXEC, per /proc/self/fdinfo. */
function leakyFds() {
  const out = [];
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    let flags;
    try {
      flags = fdFlags(fd);
    } catch {
      continue; // the readdir fd itself, closed meanwhile
    }
    if ((flags & O_CLOEXEC) === 0) out.push(fd);
  }
  return out.sort((a, b) => a - b);
}

/** Run the probe with fds through the library; resolve {report, exit}. */
function probe(fds, out) {
  return new Promise((resolve) => {
    spawn({
      file: probePath,
      argv: [probePath, '--out', out],
      fds,
      onExit: (exit) => resolve({ report: readReport(out), exit }),
    });
  });
}

function inode(fd) {
  return fs.fstatSync(fd).ino;
}

const scenarios = {
  /** The probe spawned with fds [null, null, null, socket] while we hold leaky fds. */
  async leak() {
    const leaky = leakyFds();
    const sock = listenUnix(args.socket);
    const run = await probe(['null', 'null', 'null', sock.fd], args.report);
    return { leaky, sockFd: sock.fd, ...run };
  },

  /**
   * Sources sitting on target numbers. Our fds 0, 1, 4, 5 are distinct files. First the
   * socket is put at fd 3 (close-on-exec, as listenUnix makes it) and the probe gets
   * [1, 0, null-dev, 3, 5, 4]: two swaps and one fd already in place. Then the socket
   * is put at fd 0 and the probe gets ['null', 'null', 'null', 0].
   */
  async collide() {
    const parent = { 0: inode(0), 1: inode(1), 4: inode(4), 5: inode(5) };
    fs.closeSync(3);
    const sock3 = listenUnix(args.socket3);
    const sock3Cloexec = (fdFlags(sock3.fd) & O_CLOEXEC) !== 0;
    const swapped = await probe([1, 0, 'null', sock3.fd, 5, 4], args.report1);
    fs.closeSync(0);
    const sock0 = listenUnix(args.socket0);
    const atZero = await probe(['null', 'null', 'null', sock0.fd], args.report2);
    return {
      parent,
      sock3: { fd: sock3.fd, sockIno: inode(sock3.fd), cloexec: sock3Cloexec },
      sock0: { fd: sock0.fd, sockIno: inode(sock0.fd) },
      swapped,
      atZero,
    };
  },

  /**
   * A waiting probe, unref'd (args.reref: and ref'd again). Writes {pid} to the result
   * at once and {pid, exit} if onExit ever runs; then the script simply ends.
   */
  async unref() {
    const result = {};
    const child = spawn({
      file: probePath,
      argv: [probePath, ...args.probeArgs],
      fds: ['null', 'null', 'null'],
      onExit: (exit) => {
        result.exit = exit;
        fs.writeFileSync(args.result, JSON.stringify(result));
      },
    });
    result.pid = child.pid;
    child.unref();
    if (args.reref) child.ref();
    return result;
  },
};

scenarios[scenario]().then(
  (result) => fs.writeFileSync(args.result, JSON.stringify(result)),
  (err) => {
    fs.writeFileSync(args.result, JSON.stringify({ error: String(err && err.stack) }));
    process.exitCode = 1;
  },
);

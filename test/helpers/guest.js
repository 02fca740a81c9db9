'use strict';
/**
 * A real QEMU guest for the tests: TCG (no KVM needed), Debian's cloud kernel and a busybox
 * initramfs that scripts/get-guest.sh builds under .cache/guest/ (scripts/setup.sh runs it).
 * The guest's /init mounts the virtiofs tag, runs a script FROM THE SHARE (each test writes its
 * own there), prints its output between markers on the serial console and powers off:
 *
 *   @@GUEST BOOTED <guest uptime, s>
 *   @@GUEST BEGIN
 *   ...what the script printed (stdout and stderr)...
 *   @@GUEST END <the script's exit status>
 *
 * (`@@GUEST ERROR <what>` instead when the share cannot be mounted or the script is missing.)
 * The guest has two users: root and `guest` (uid/gid 1000): `su guest -c '...'` runs as the latter.
 *
 * A missing QEMU or guest THROWS with the reason and the setup command: the test fails, it is
 * never skipped.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { qemuArgs } = require('../../dist/index.js');
const { spawnAs } = require('./users.js');
const { tempDir } = require('./util.js');

const GUEST_DIR = path.join(__dirname, '..', '..', '.cache', 'guest');
const SETUP =
  'Run scripts/setup.sh as root: it installs QEMU (qemu-system-x86, or qemu-system-arm on arm64) and ' +
  'busybox-static with apt-get and builds the guest with scripts/get-guest.sh.';

/** Words that survive the kernel command line as they are. */
const CMDLINE_WORD = /^[A-Za-z0-9._/-]+$/;

/** How much of the console a failure shows. */
const TAIL_BYTES = 3000;

let found;

/** The tag=… of the -device among `args` (a qemuArgs() argv), unescaped; 'guesttest' without one. */
function deviceTag(args) {
  const device = args?.[args.indexOf('-device') + 1] ?? '';
  const m = /(?:^|[^,]),tag=((?:[^,]|,,)*)/.exec(device);
  return m ? m[1].replace(/,,/g, ',') : 'guesttest';
}

/**
 * What scripts/get-guest.sh built: `{ arch, qemu, machine, console, cpu, kernelVersion,
 * kernel, initrd }` with absolute paths. Throws, with how to get it, when something is missing.
 */
function guestConfig() {
  if (found) return found;
  const file = path.join(GUEST_DIR, 'guest.json');
  let config;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`no QEMU guest: cannot read ${file} (${err.code ?? err.message}). ${SETUP}`, { cause: err });
  }
  config.kernel = path.resolve(GUEST_DIR, config.kernel);
  config.initrd = path.resolve(GUEST_DIR, config.initrd);
  for (const what of ['qemu', 'kernel', 'initrd']) {
    if (!fs.existsSync(config[what])) throw new Error(`no QEMU guest: ${what} ${config[what]} is missing. ${SETUP}`);
  }
  found = config;
  return config;
}

/**
 * Boot the guest once, attached to a vhost-user-fs back-end, and resolve with what its script
 * printed: `{ output, status, bootedAt, wallMs, console }` (status: the script's exit status;
 * bootedAt: the guest's uptime when /init started, in s; console: the whole serial output).
 *
 * - `socketPath`: the back-end's socket; the device options come from the library's
 *   `qemuArgs({ socketPath, tag, memory })`. Or `deviceArgs`: such an argv, made elsewhere (by
 *   a daemon's own `qemuArgs()`, say); the guest mounts the tag of its -device.
 * - `script`: the script's file name in the share, which the test has written there.
 * - `tag` (default: deviceArgs' tag, else 'guesttest'), `memory` (default '256M').
 * - `timeoutMs` (default 120 s): past it QEMU is SIGKILLed and the promise rejects with the
 *   console's tail. Any end without the END marker rejects the same way.
 * - `asUser`: a user of users.js's createUser; QEMU runs as that user (as a desktop app runs it).
 *
 * QEMU is SIGKILLed when test `t` ends, should it still run.
 */
function runGuest(
  t,
  { socketPath, deviceArgs, script, tag = deviceTag(deviceArgs), memory = '256M', timeoutMs = 120000, asUser } = {},
) {
  const config = guestConfig();
  for (const [name, value] of [
    ['script', script],
    ['tag', tag],
  ]) {
    if (typeof value !== 'string' || !CMDLINE_WORD.test(value)) {
      throw new TypeError(`runGuest: ${name} ${JSON.stringify(value)} must be a word of ${CMDLINE_WORD}`);
    }
  }
  const device = deviceArgs ?? qemuArgs({ socketPath, tag, memory });
  const dir = tempDir(t, 'vfsd-guest-');
  if (asUser) fs.chownSync(dir, asUser.uid, asUser.gid);
  const consoleFile = path.join(dir, 'console');
  const args = [
    '-M',
    config.machine,
    ...(config.cpu ? ['-cpu', config.cpu] : []),
    '-accel',
    'tcg',
    '-smp',
    '1',
    '-nodefaults', // no VGA, NIC, floppy, CD, monitor: nothing but what we add
    '-display',
    'none',
    // The console goes to a file, not a pipe: QEMU's UART writes one byte per write() to a
    // non-blocking stdout, and a socketpair (what child_process makes) counts each as a whole
    // buffer, so a reader a little late makes it EAGAIN, and after 4 retries QEMU drops bytes.
    '-serial',
    `file:${consoleFile}`,
    '-no-reboot', // panic=-1 reboots, which then ends QEMU
    '-kernel',
    config.kernel,
    '-initrd',
    config.initrd,
    '-append',
    `console=${config.console} panic=-1 quiet vfs.tag=${tag} vfs.script=${script}`,
    ...device,
  ];
  const started = Date.now();
  const child = asUser
    ? spawnAs(t, asUser, config.qemu, args)
    : spawn(config.qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (asUser) child.stdin.end();
  const readConsole = () => {
    try {
      return fs.readFileSync(consoleFile, 'utf8').replace(/\r/g, '');
    } catch {
      return '';
    }
  };
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stdout.resume(); // QEMU prints nothing there; the console is in consoleFile
  child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
  const who = asUser ? ` as ${asUser.name} (uid ${asUser.uid})` : '';
  const tail = () =>
    `\n--- console (last ${TAIL_BYTES} bytes) ---\n${readConsole().slice(-TAIL_BYTES)}` +
    (err ? `\n--- QEMU's stderr ---\n${err.slice(-TAIL_BYTES)}` : '');

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the guest${who} did not finish within ${timeoutMs} ms; QEMU was killed${tail()}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${config.qemu}${who}: ${e.message}. ${SETUP}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const serial = readConsole();
      const error = /^@@GUEST ERROR (.*)$/m.exec(serial);
      const begin = serial.indexOf('@@GUEST BEGIN\n');
      const end = /^@@GUEST END (\d+)$/m.exec(serial);
      if (error || begin < 0 || !end || end.index < begin) {
        const why = error ? error[1] : `QEMU exited (${signal ?? `code ${code}`}) without the guest's END marker`;
        reject(new Error(`the guest${who} failed: ${why}${tail()}`));
        return;
      }
      resolve({
        output: serial.slice(begin + '@@GUEST BEGIN\n'.length, end.index),
        status: Number(end[1]),
        bootedAt: Number(/^@@GUEST BOOTED (\S+)$/m.exec(serial)?.[1]),
        wallMs: Date.now() - started,
        console: serial,
      });
    });
  });
}

/**
 * `ls -ln` lines (busybox's) as { name: 'uid:gid' }; other lines (totals, errors) are left out.
 */
function parseLsLn(text) {
  const owners = {};
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 9 && /^[-dlcbps][-rwxsStT]{9}/.test(f[0])) owners[f.slice(8).join(' ')] = `${f[2]}:${f[3]}`;
  }
  return owners;
}

module.exports = { guestConfig, parseLsLn, runGuest };

'use strict';
/**
 * nydusd's main(): the start-up order (command line, logging, signal handlers, rlimit, the
 * first mount, the vhost-user socket, the API socket), the test knobs that bend it, and the
 * exit on SIGTERM/SIGINT. Follows src/bin/nydusd/main.rs.
 */
const fs = require('node:fs');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const { BUILD, knob } = require('./env');
const { dbg, ioDisplay, ioDebug } = require('./rust');
const { LEVEL_NUM, log, writeStderr, info, warn, error, mainError } = require('./log');
const { ClapError, FLAT, parseCommandLine, clapFail, printHelp, printVersion } = require('./cli');
const { MountError, doMount } = require('./fs-service');
const { daemon, fsmEvent, triggerStop } = require('./state');
const { bindVhostSocket, startApi, removeApiSocket } = require('./sockets');

const env = process.env;

/** nydusd's main(): read the command line, set up logging and signals, then bring the daemon up. */
async function main() {
  const argv = process.argv.slice(2);
  if (argv.length === 0 && env.NODE_TEST_CONTEXT) process.exit(0); // picked up by `node --test test/`
  const cl = readCommandLine(argv);
  const val = (k) => cl.values.get(k);
  setupLogging(val);
  // register_signal_handler(SIGINT/SIGTERM, sig_exit)
  process.on('SIGTERM', () => onExitSignal(cl));
  process.on('SIGINT', () => onExitSignal(cl));
  logStartup();
  handleRlimit(val('rlimit-nofile'));
  requireVirtiofs(cl.sub, val);
  daemon.id = val('id') ?? null;
  daemon.supervisor = val('supervisor') ?? null;
  mountFirst(val('virtual-mountpoint'), firstMountCmd(val));
  fsmEvent('Mount'); // Init -> Ready; DaemonState stays INIT until StartService
  await startServices(val('apisock'), val('sock'));
}

/** The parsed command line; where clap would, prints help, the version or the error and exits instead. */
function readCommandLine(argv) {
  let cl;
  try {
    cl = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof ClapError) clapFail(e);
    throw e;
  }
  if (cl.help) printHelp(cl.help);
  if (cl.version) printVersion();
  return cl;
}

/** setup_logging: check --log-rotation-size, set the level (RUST_LOG caps it) and the --log-file target. */
function setupLogging(val) {
  const rotation = FLAT ? '0' : val('log-rotation-size');
  if (!/^\d+$/.test(rotation)) {
    mainError(
      `Custom { kind: InvalidInput, error: ${dbg(`Invalid log rotation size: ${rotation === '' ? 'cannot parse integer from empty string' : 'invalid digit found in string'}`)} }`,
    );
  }
  log.max = LEVEL_NUM[val('log-level')];
  if (env.RUST_LOG && Object.hasOwn(LEVEL_NUM, env.RUST_LOG.trim().toLowerCase())) {
    log.ceiling = LEVEL_NUM[env.RUST_LOG.trim().toLowerCase()];
  }
  if (val('log-file') !== undefined) log.file = logFilePath(val('log-file'));
}

/** flexi_logger's file for --log-file p: p's directory and stem, its extension or `.log`, made absolute. */
function logFilePath(p) {
  const ext = path.extname(p);
  const stem = path.basename(p, ext);
  return path.resolve(path.dirname(p), `${stem}.${ext ? ext.slice(1) : 'log'}`);
}

/** Log the start-up line with the build information, then NYDUSD_STANDIN_STDERR_LINES filler lines. */
function logStartup() {
  info(
    `Program Version: ${BUILD.package_ver}, Git Commit: ${dbg(BUILD.git_commit)}, Build Time: ` +
      `${dbg(BUILD.build_time)}, Profile: ${dbg(BUILD.profile)}, Rustc Version: ${dbg(BUILD.rustc)}`,
  );
  for (let i = 1; i <= knob.stderrLines; i++) info(`stand-in filler line ${i}/${knob.stderrLines}`);
}

/** Exit 1 unless the subcommand is virtiofs, the only one emulated; warn that --upgrade does nothing there. */
function requireVirtiofs(sub, val) {
  if (sub === null) {
    writeStderr('nydusd-standin: FUSE mode (no subcommand) is not emulated; use `virtiofs --sock <path>`\n');
    process.exit(1);
  }
  if (sub !== 'virtiofs') {
    writeStderr(`nydusd-standin: the \`${sub}\` subcommand is not emulated; only \`virtiofs\` is\n`);
    process.exit(1);
  }
  if (val('upgrade')) warn('stand-in: --upgrade has no effect in virtiofs mode');
}

/** process_fs_service: the mount that --shared-dir or --bootstrap asks for at start-up, or null. */
function firstMountCmd(val) {
  if (val('shared-dir') !== undefined) {
    return { fs_type: 'passthrough_fs', source: val('shared-dir'), config: '', prefetch_files: null };
  }
  if (val('bootstrap') !== undefined) {
    const config = rafsConfigText(val);
    const prefetch = prefetchList(val('prefetch-files'));
    return { fs_type: 'rafs', source: val('bootstrap'), config, prefetch_files: prefetch };
  }
  return null;
}

/** The RAFS config of --bootstrap: built for --localfs-dir, else read from --config; exits when neither is usable. */
function rafsConfigText(val) {
  if (val('localfs-dir') !== undefined) {
    return JSON.stringify({
      device: {
        backend: { type: 'localfs', config: { dir: val('localfs-dir'), readahead: true } },
        cache: { type: 'blobcache', config: { compressed: false, work_dir: val('localfs-dir') } },
      },
      mode: 'direct',
      digest_validate: false,
      iostats_files: false,
    });
  }
  if (val('config') !== undefined) {
    try {
      return fs.readFileSync(val('config'), 'utf8');
    } catch (e) {
      mainError(ioDebug(e));
    }
  }
  mainError(
    `Custom { kind: InvalidInput, error: InvalidArguments(${dbg('both --config and --localfs-dir are missing')}) }`,
  );
}

/** The --prefetch-files list (one path a line, blanks dropped), or null without it; exits when unreadable. */
function prefetchList(file) {
  if (file === undefined) return null;
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    mainError(
      `Custom { kind: InvalidInput, error: InvalidArguments(${dbg('the prefetch-files arg is not a file path')}) }`,
    );
  }
}

/** Mount cmd at mountpoint, if any; a refusal ends the process with main()'s StartService error. */
function mountFirst(mountpoint, cmd) {
  if (!cmd) return;
  try {
    doMount(mountpoint, cmd);
  } catch (e) {
    if (!(e instanceof MountError)) throw e;
    const m = /^Other\("(.*)"\)$/s.exec(e.kind);
    mainError(
      `Custom { kind: InvalidInput, error: ${m ? `StartService(${dbg(m[1].replace(/\\"/g, '"'))})` : e.kind} }`,
    );
  }
}

/** Bind the vhost-user socket, then the API socket; with INIT_MS or NEVER_RUNNING, the API first. */
async function startServices(apisock, sock) {
  if ((knob.initMs > 0 || knob.neverRunning) && apisock !== undefined) {
    await startApiFirst(apisock, sock);
    return;
  }
  await startService(sock);
  exitEarly();
  if (apisock !== undefined) await startApi(apisock);
}

/** DEVIATION of INIT_MS / NEVER_RUNNING: serve the API while INIT, then start unless never or stopped meanwhile. */
async function startApiFirst(apisock, sock) {
  warn(
    `stand-in: NYDUSD_STANDIN_${knob.neverRunning ? 'NEVER_RUNNING' : `INIT_MS=${knob.initMs}`}: the API is ` +
      'served while the daemon is still INIT; the real nydusd in virtiofs mode opens its API only once RUNNING',
  );
  await startApi(apisock);
  if (knob.neverRunning) return;
  await sleep(knob.initMs);
  if (daemon.shuttingDown) return;
  await startService(sock);
  exitEarly();
}

/** StartService: Ready -> Running and bind --sock (exits when it cannot); RUNNING unless a stop came meanwhile. */
async function startService(sock) {
  fsmEvent('Start');
  try {
    await bindVhostSocket(sock);
  } catch (e) {
    const text = e.sunLen ? 'socket error: path must be shorter than SUN_LEN' : `socket error: ${ioDisplay(e)}`;
    mainError(`Custom { kind: Other, error: StartService(${dbg(text)}) }`);
  }
  if (!daemon.shuttingDown) daemon.state = 'RUNNING';
}

/** NYDUSD_STANDIN_EXIT_EARLY: exit with its code now, --sock bound and the API socket not yet. */
function exitEarly() {
  if (knob.exitEarly === null) return;
  error(`stand-in: NYDUSD_STANDIN_EXIT_EARLY=${knob.exitEarly}: exiting before the API socket is bound`);
  writeStderr(`Error: Custom { kind: Other, error: "nydusd-standin: exit requested by NYDUSD_STANDIN_EXIT_EARLY" }\n`);
  process.exit(knob.exitEarly);
}

/** handle_rlimit_nofile_option: the limit nydusd would set, or its error and exit (the stand-in only checks). */
function handleRlimit(raw) {
  if (!/^\d+$/.test(raw) || BigInt(raw) > 18446744073709551615n) {
    mainError(`Custom { kind: InvalidInput, error: ${dbg('invalid value for option `rlimit-nofile`')} }`);
  }
  const want = Number(raw);
  if (want === 0) return;
  const fileMax = readFileMax();
  if (fileMax < 2 * 16384) {
    mainError(
      `Custom { kind: Other, error: ${dbg('The fs.file-max sysctl is too low to allow a reasonable number of open files.')} }`,
    );
  }
  const { soft, hard } = nofileLimits();
  let max = Math.min(fileMax - 16384, 1_000_000);
  if (soft >= max) max = soft;
  const value = Math.min(want, max);
  info(`Set rlimit-nofile to ${value}, maximum ${max}`);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const nrOpen = readNrOpen();
  // setrlimit(NOFILE, value, value): raising the hard limit needs CAP_SYS_RESOURCE.
  if ((!root && value > hard) || value > nrOpen) {
    mainError(ioDebug({ code: 'EPERM' }));
  }
}

/** fs.file-max; exits with the read error as nydusd would. */
function readFileMax() {
  try {
    return Number(fs.readFileSync('/proc/sys/fs/file-max', 'utf8').trim());
  } catch (e) {
    mainError(ioDebug(e));
  }
}

/** This process's RLIMIT_NOFILE as { soft, hard } (Infinity when unlimited; 1024 each when unreadable). */
function nofileLimits() {
  let soft = 1024;
  let hard = 1024;
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) {
      soft = m[1] === 'unlimited' ? Infinity : Number(m[1]);
      hard = m[2] === 'unlimited' ? Infinity : Number(m[2]);
    }
  } catch {
    /* keep defaults */
  }
  return { soft, hard };
}

/** fs.nr_open, the ceiling of any RLIMIT_NOFILE (1048576 when unreadable). */
function readNrOpen() {
  try {
    return Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch {
    return 1048576;
  }
}

/** sig_exit -> DAEMON_CONTROLLER.shutdown() */
function onExitSignal(cl) {
  if (daemon.shuttingDown) return; // a second signal finds the daemon already taken
  daemon.shuttingDown = true;
  daemon.taken = true;
  triggerStop();
  if (knob.ignoreSigterm) {
    // d.wait() blocks on the VhostUserDaemon mutex held by the accept() of a front-end
    // that never comes: the real process stays here until SIGKILL.
    return;
  }
  info('nydusd quits');
  const apisock = cl.values.get('apisock');
  removeApiSocket(apisock);
  info('http-server thread exits');
  info('HTTP api-server handler thread exits');
  // The vhost-user socket is deliberately not closed (libuv would unlink it): nydusd
  // leaves it behind.
  process.exit(0);
}

module.exports = { main };

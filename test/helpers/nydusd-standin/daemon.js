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
const { ClapError, FLAT, parseCommandLine, clapFail, printHelp } = require('./cli');
const { MountError, doMount } = require('./fs-service');
const { daemon, fsmEvent, triggerStop } = require('./state');
const { bindVhostSocket, startApi, removeApiSocket } = require('./sockets');

const env = process.env;

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length === 0 && env.NODE_TEST_CONTEXT) process.exit(0); // picked up by `node --test test/`

  let cl;
  try {
    cl = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof ClapError) clapFail(e);
    throw e;
  }
  if (cl.help) printHelp(cl.help);
  if (cl.version) {
    const bti = `\rVersion: \t${BUILD.package_ver}\nGit Commit: \t${BUILD.git_commit}\nBuild Time: \t${BUILD.build_time}\n` +
      `Profile: \t${BUILD.profile}\nRustc: \t\t${BUILD.rustc}\n`;
    process.stdout.write(`nydusd ${bti}\n`);
    process.exit(0);
  }
  const val = (k) => cl.values.get(k);

  // setup_logging
  const rotation = FLAT ? '0' : val('log-rotation-size');
  if (!/^\d+$/.test(rotation)) {
    mainError(`Custom { kind: InvalidInput, error: ${dbg(`Invalid log rotation size: ${rotation === '' ? 'cannot parse integer from empty string' : 'invalid digit found in string'}`)} }`);
  }
  log.max = LEVEL_NUM[val('log-level')];
  if (env.RUST_LOG && Object.hasOwn(LEVEL_NUM, env.RUST_LOG.trim().toLowerCase())) {
    log.ceiling = LEVEL_NUM[env.RUST_LOG.trim().toLowerCase()];
  }
  if (val('log-file') !== undefined) {
    const p = val('log-file');
    const ext = path.extname(p);
    const stem = path.basename(p, ext);
    log.file = path.resolve(path.dirname(p), `${stem}.${ext ? ext.slice(1) : 'log'}`);
  }

  // register_signal_handler(SIGINT/SIGTERM, sig_exit)
  process.on('SIGTERM', () => onExitSignal(cl));
  process.on('SIGINT', () => onExitSignal(cl));

  info(`Program Version: ${BUILD.package_ver}, Git Commit: ${dbg(BUILD.git_commit)}, Build Time: ` +
    `${dbg(BUILD.build_time)}, Profile: ${dbg(BUILD.profile)}, Rustc Version: ${dbg(BUILD.rustc)}`);
  for (let i = 1; i <= knob.stderrLines; i++) info(`stand-in filler line ${i}/${knob.stderrLines}`);

  handleRlimit(val('rlimit-nofile'));

  if (cl.sub === null) {
    writeStderr('nydusd-standin: FUSE mode (no subcommand) is not emulated; use `virtiofs --sock <path>`\n');
    process.exit(1);
  }
  if (cl.sub !== 'virtiofs') {
    writeStderr(`nydusd-standin: the \`${cl.sub}\` subcommand is not emulated; only \`virtiofs\` is\n`);
    process.exit(1);
  }
  if (val('upgrade')) warn('stand-in: --upgrade has no effect in virtiofs mode');

  daemon.id = val('id') ?? null;
  daemon.supervisor = val('supervisor') ?? null;

  // process_fs_service: --shared-dir / --bootstrap become the first mount.
  let mountCmd = null;
  if (val('shared-dir') !== undefined) {
    mountCmd = { fs_type: 'passthrough_fs', source: val('shared-dir'), config: '', prefetch_files: null };
  } else if (val('bootstrap') !== undefined) {
    let config;
    if (val('localfs-dir') !== undefined) {
      config = JSON.stringify({
        device: {
          backend: { type: 'localfs', config: { dir: val('localfs-dir'), readahead: true } },
          cache: { type: 'blobcache', config: { compressed: false, work_dir: val('localfs-dir') } },
        },
        mode: 'direct', digest_validate: false, iostats_files: false,
      });
    } else if (val('config') !== undefined) {
      try {
        config = fs.readFileSync(val('config'), 'utf8');
      } catch (e) {
        mainError(ioDebug(e));
      }
    } else {
      mainError(`Custom { kind: InvalidInput, error: InvalidArguments(${dbg('both --config and --localfs-dir are missing')}) }`);
    }
    let prefetch = null;
    if (val('prefetch-files') !== undefined) {
      try {
        prefetch = fs.readFileSync(val('prefetch-files'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
      } catch {
        mainError(`Custom { kind: InvalidInput, error: InvalidArguments(${dbg('the prefetch-files arg is not a file path')}) }`);
      }
    }
    mountCmd = { fs_type: 'rafs', source: val('bootstrap'), config, prefetch_files: prefetch };
  }
  if (mountCmd) {
    try {
      doMount(val('virtual-mountpoint'), mountCmd);
    } catch (e) {
      if (!(e instanceof MountError)) throw e;
      const m = /^Other\("(.*)"\)$/s.exec(e.kind);
      mainError(`Custom { kind: InvalidInput, error: ${m ? `StartService(${dbg(m[1].replace(/\\"/g, '"'))})` : e.kind} }`);
    }
  }
  fsmEvent('Mount'); // Init -> Ready; DaemonState stays INIT until StartService

  const apisock = val('apisock');
  const sock = val('sock');
  const startService = async () => {
    fsmEvent('Start');
    try {
      await bindVhostSocket(sock);
    } catch (e) {
      const text = e.sunLen ? 'socket error: path must be shorter than SUN_LEN' : `socket error: ${ioDisplay(e)}`;
      mainError(`Custom { kind: Other, error: StartService(${dbg(text)}) }`);
    }
    if (!daemon.shuttingDown) daemon.state = 'RUNNING';
  };
  const exitEarly = () => {
    if (knob.exitEarly === null) return;
    error(`stand-in: NYDUSD_STANDIN_EXIT_EARLY=${knob.exitEarly}: exiting before the API socket is bound`);
    writeStderr(`Error: Custom { kind: Other, error: "nydusd-standin: exit requested by NYDUSD_STANDIN_EXIT_EARLY" }\n`);
    process.exit(knob.exitEarly);
  };

  if ((knob.initMs > 0 || knob.neverRunning) && apisock !== undefined) {
    warn(`stand-in: NYDUSD_STANDIN_${knob.neverRunning ? 'NEVER_RUNNING' : `INIT_MS=${knob.initMs}`}: the API is ` +
      'served while the daemon is still INIT; the real nydusd in virtiofs mode opens its API only once RUNNING');
    await startApi(apisock);
    if (knob.neverRunning) return;
    await sleep(knob.initMs);
    if (daemon.shuttingDown) return;
    await startService();
    exitEarly();
    return;
  }
  await startService();
  exitEarly();
  if (apisock !== undefined) await startApi(apisock);
}

/** handle_rlimit_nofile_option */
function handleRlimit(raw) {
  if (!/^\d+$/.test(raw) || BigInt(raw) > 18446744073709551615n) {
    mainError(`Custom { kind: InvalidInput, error: ${dbg('invalid value for option `rlimit-nofile`')} }`);
  }
  const want = Number(raw);
  if (want === 0) return;
  let fileMax;
  try {
    fileMax = Number(fs.readFileSync('/proc/sys/fs/file-max', 'utf8').trim());
  } catch (e) {
    mainError(ioDebug(e));
  }
  if (fileMax < 2 * 16384) {
    mainError(`Custom { kind: Other, error: ${dbg('The fs.file-max sysctl is too low to allow a reasonable number of open files.')} }`);
  }
  let soft = 1024;
  let hard = 1024;
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) {
      soft = m[1] === 'unlimited' ? Infinity : Number(m[1]);
      hard = m[2] === 'unlimited' ? Infinity : Number(m[2]);
    }
  } catch { /* keep defaults */ }
  let max = Math.min(fileMax - 16384, 1_000_000);
  if (soft >= max) max = soft;
  const value = Math.min(want, max);
  info(`Set rlimit-nofile to ${value}, maximum ${max}`);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  let nrOpen = 1048576;
  try {
    nrOpen = Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch { /* default */ }
  // setrlimit(NOFILE, value, value): raising the hard limit needs CAP_SYS_RESOURCE.
  if ((!root && value > hard) || value > nrOpen) {
    mainError(ioDebug({ code: 'EPERM' }));
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

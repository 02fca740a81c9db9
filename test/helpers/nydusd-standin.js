#!/usr/bin/env node
'use strict';
/**
 * nydusd-standin: a stand-in for `nydusd virtiofs`, for tests on hosts where nydusd cannot
 * be installed. It copies the real daemon's externally visible behaviour as closely as a
 * Node script can: the command line (clap 4), the log format (flexi_logger), the two
 * sockets, the state machine, and the administration API byte for byte on the wire
 * (dbs-uhttp server + nydus-api handlers + nydus-service mount logic).
 *
 * Sources it follows (dragonflyoss/nydus HEAD, read from git; kata pins v2.2.3):
 *   src/bin/nydusd/main.rs          command line, start-up order, rlimit, exit codes
 *   src/logger.rs                   `[YYYY-MM-DD hh:mm:ss.uuuuuu +00:00] LEVEL msg`
 *   service/src/daemon.rs           states, state machine, DaemonInfo, shutdown
 *   service/src/fs_service.rs       mount/umount/backend info, error values
 *   service/src/lib.rs              error texts, FsBackendType aliases
 *   src/bin/nydusd/virtiofs.rs      Listener::new(sock, unlink=true); RUNNING = bound
 *   utils/src/metrics.rs (v2.2.3)   FsIoStats and what /api/v1/metrics* serialize
 *   api/src/http_handler.rs         routing, status codes, {"code":"UNDEFINED",...}
 *   api/src/http_endpoint_{v1,common}.rs   per-route method/body/query rules
 *   openanolis/dbs-uhttp            request parsing, 1 KiB line buffer, 50 KiB body cap,
 *                                   10 connections, response format
 *   fuse-backend-rs pseudo_fs.rs    mountpoint path walking
 * When the v1 OpenAPI yaml and the server code disagree, the server code wins (e.g.
 * prefetch_files is an array of strings; /daemon/backend needs ?mountpoint=).
 *
 * Usage (same as nydusd): nydusd-standin.js [global flags] virtiofs --sock P [flags]
 *   Global flags may also come after `virtiofs`: --apisock/-A, --config/-C, --id,
 *   --supervisor, --log-level/-l trace|debug|info|warn|error, --log-file/-L,
 *   --log-rotation-size, --rlimit-nofile, --upgrade. virtiofs flags: --sock,
 *   --hybrid-mode, --shared-dir/-s, --bootstrap/-B, --localfs-dir/-D, --prefetch-files,
 *   --virtual-mountpoint/-m. `--flag value`, `--flag=value`, `-lvalue`, `-l=value`.
 *   Bad command lines print a clap-style `error: ...` and exit 2. Only `virtiofs` is
 *   emulated; `fuse`/`singleton` exit 1 with an explanation.
 *
 * Test knobs (environment; the real nydusd ignores all of them):
 *   NYDUSD_STANDIN_RECORD=<file>   Append one JSON line per served /api/v1/mount request
 *                                  (any method, any outcome): {time, method, target,
 *                                  rawQuery, mountpoint (decoded as nydusd decodes it, or
 *                                  null), mountpointHex, body (utf-8, or null), bodyBase64,
 *                                  status, response}.
 *   NYDUSD_STANDIN_INIT_MS=<ms>    Stay INIT for ms before turning RUNNING (default 0).
 *                                  DEVIATION: the real nydusd in virtiofs mode opens the
 *                                  API socket only after it is RUNNING, so a client never
 *                                  sees INIT there. With INIT_MS > 0 the stand-in instead
 *                                  binds the API first (as some other nydusd modes/versions
 *                                  could) and answers state "INIT"; the vhost-user socket is
 *                                  bound at the INIT->RUNNING transition (RUNNING means
 *                                  "listener bound" in the real code). A WARN line says so.
 *   NYDUSD_STANDIN_NEVER_RUNNING=1 Like INIT_MS=infinity: API up, state INIT forever,
 *                                  --sock never bound.
 *   NYDUSD_STANDIN_EXIT_EARLY=<code>  Print an ERROR line and `Error: ...` and exit with
 *                                  <code> right after --sock is bound and before the API
 *                                  socket is bound (so the vhost-user socket is left
 *                                  behind, as when the real one fails to bind --apisock).
 *   NYDUSD_STANDIN_IGNORE_SIGTERM=1  Behave like the real nydusd in virtiofs mode with no
 *                                  VMM connected: SIGTERM/SIGINT (and PUT /daemon/exit)
 *                                  run the state machine to STOPPED and log it, but the
 *                                  process never exits (the real shutdown blocks on a mutex
 *                                  held by the vhost-user accept()); only SIGKILL ends it.
 *                                  As in the real one, later API calls that need the daemon
 *                                  object (GET /daemon, PUT /daemon/exit, ...) panic, and
 *                                  with panic=abort that is SIGABRT; mount calls still work.
 *                                  Default (unset): SIGTERM/SIGINT shut down gracefully,
 *                                  remove the API socket, keep the vhost-user socket, exit 0
 *                                  (what the real one does once its VMM has disconnected).
 *   NYDUSD_STANDIN_SLOW_MS=<ms>    Delay every API answer by ms. Requests are served one at
 *                                  a time, as by the real single HTTP thread, so one slow
 *                                  request delays all others.
 *   NYDUSD_STANDIN_STDERR_LINES=<n>  Log n extra INFO filler lines at start (output-draining
 *                                  tests).
 *   NYDUSD_STANDIN_FS_METRICS=<json>  Counters each RAFS mount's metrics start from (an
 *                                  object of FsIoStats fields, e.g. {"data_read":4096,
 *                                  "fop_hits":[1,0,2]}); the stand-in serves no FUSE request,
 *                                  so without it every counter stays 0, as on an idle nydusd.
 *   NYDUSD_STANDIN_VERSION=<vX.Y.Z>  The version `--version` and the start-up line report
 *                                  (default v2.2.3). Below v2.1.0 the stand-in speaks the
 *                                  command line of nydusd 1.x/2.0 (clap 2, no subcommands):
 *                                  `nydusd [--log-level L] [--apisock A] --sock S [...]` serves
 *                                  virtio-fs, and `virtiofs` is refused as clap 2 refuses an
 *                                  unexpected positional argument (exit 1).
 *   NODE_TEST_CONTEXT              Set by `node --test` when it runs this file as if it
 *                                  were a test (it lives under test/): with no command-line
 *                                  arguments the stand-in then exits 0 silently.
 *
 * Other deviations, all documented where they happen: after a request-parsing error the
 * connection is closed once the 400 is written (dbs-uhttp keeps it open with its parser in
 * an undefined state); RAFS bootstraps are only checked for existence, type and magic;
 * RAFS configs only for JSON shape; vhost-user connections are accepted and held but not
 * spoken to; duplicate JSON keys are not detected; serde error positions are approximate.
 *
 * Layout (nydusd-standin/, one concern a file): env.js (version, knobs), rust.js (Rust's
 * Debug/Display texts), log.js (flexi_logger, panics, main's Err), cli.js (clap),
 * fs-service.js (mounts), state.js (state machine), serde.js (bodies), uri.js (targets),
 * api.js (routes), http.js (dbs-uhttp), sockets.js (the two sockets), daemon.js (main).
 */
const { main } = require('./nydusd-standin/daemon');
const { writeStderr } = require('./nydusd-standin/log');

main().catch((e) => {
  writeStderr(`nydusd-standin: internal error: ${e && e.stack}\n`);
  process.exit(70);
});

'use strict';
/**
 * The administration API: one handler per route with nydusd's method/body/query rules, status
 * codes and `{"code":"UNDEFINED",...}` error bodies, the request's log lines, and the record
 * file of NYDUSD_STANDIN_RECORD. Follows api/src/http_handler.rs and
 * api/src/http_endpoint_{v1,common}.rs; where the v1 OpenAPI yaml and the server code
 * disagree, the server code wins.
 */
const fs = require('node:fs');
const { knob } = require('./env');
const { dbg, ioDebug, durDbg } = require('./rust');
const { LEVEL_NUM, log, info, warn, error, debug, panicAbort } = require('./log');
const { vfs, fsMetrics, MountError, doMount, doRemount, doUmount } = require('./fs-service');
const { daemon, fsmEvent, triggerExit, daemonInfoJson } = require('./state');
const { deserializeStruct } = require('./serde');
const { absPath, httpCrateParse, queryPart } = require('./uri');
const { METHOD_DEBUG } = require('./http');

const MOUNT_CMD_FIELDS = [
  { name: 'source', type: 'string', required: true },
  { name: 'fs_type', type: 'string', def: '' },
  { name: 'config', type: 'string', required: true },
  { name: 'prefetch_files', type: 'strings?', def: null },
];

const STATUS_DEBUG = {
  200: 'OK',
  204: 'NoContent',
  400: 'BadRequest',
  404: 'NotFound',
  500: 'InternalServerError',
  501: 'NotImplemented',
  503: 'ServiceUnavailable',
};
/** error_response(HttpError, status) */
const errResp = (status, httpErrorDebug) => ({
  status,
  body: JSON.stringify({ code: 'UNDEFINED', message: httpErrorDebug }),
});
/** A success: 200 with body, or 204 without one. */
const ok = (body) => (body === undefined || body === null ? { status: 204, body: null } : { status: 200, body });
/** translate_status_code for MountFilesystem/DaemonAbnormal kinds */
function kindStatus(kind) {
  if (kind === 'NotReady') return 503;
  if (kind === 'Unsupported') return 501;
  if (kind.startsWith('UnexpectedEvent(')) return 400;
  return 500;
}

/** The daemon object is gone after shutdown(): DAEMON_CONTROLLER.get_daemon() unwraps None. */
function needDaemon() {
  if (daemon.taken) {
    panicAbort('api-server', 'called `Option::unwrap()` on a `None` value', 'service/src/daemon.rs:0:0');
  }
}

const ROUTES = new Map();
const v1 = (p) => `/api/v1${p}`;
/** The route key of a request: its method and whether it has a body, e.g. `PUT:body`. */
const methodBody = (req) => `${req.method}:${req.body ? 'body' : 'none'}`;
const BAD = { handlerErr: 'BadRequest' };

ROUTES.set(v1('/daemon'), (req) => {
  switch (methodBody(req)) {
    case 'GET:none':
      needDaemon();
      return ok(daemonInfoJson(true));
    case 'PUT:body': {
      const r = deserializeStruct(req.body, 'DaemonConf', [{ name: 'log_level', type: 'string', required: true }]);
      if (r.err) return { handlerErr: r.err };
      const lv = r.value.log_level.toLowerCase();
      if (!Object.hasOwn(LEVEL_NUM, lv)) {
        error(
          `Invalid log level passed, attempted to convert a string that doesn't match an existing log level`,
          'src/bin/nydusd/api_server_glue.rs:0',
        );
        return errResp(500, 'Configure(ResponsePayloadType)');
      }
      log.max = LEVEL_NUM[lv];
      return ok();
    }
    default:
      return BAD;
  }
});
ROUTES.set(v1('/daemon/exit'), (req) => {
  if (methodBody(req) !== 'PUT:none') return BAD;
  needDaemon();
  triggerExit();
  info('exit daemon by http request');
  // kill(Pid::this(), SIGTERM): delivered after this answer is on its way.
  return { ...ok(), after: () => process.kill(process.pid, 'SIGTERM') };
});
ROUTES.set(v1('/daemon/start'), (req) => {
  if (methodBody(req) !== 'PUT:none') return BAD;
  needDaemon();
  const e = fsmEvent('Start');
  if (e) return errResp(400, `Configure(DaemonAbnormal(UnexpectedEvent(${dbg(e)})))`);
  return ok();
});
ROUTES.set(v1('/daemon/events'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  return ok(JSON.stringify({ max_errors: 1024, total_errors: 0, max_size: 1048576, errors: [] }));
});
ROUTES.set(v1('/daemon/backend'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  const mp = queryPart(req.query, 'mountpoint');
  if (mp === null) return { handlerErr: `QueryString(${dbg("'mountpoint' should be specified in query string")})` };
  let node;
  try {
    node = vfs.walk(mp);
  } catch (e) {
    return errResp(
      500,
      `FsBackendInfo(Metrics(Daemon(Other(${dbg(`VFS failed to handle request, PathWalk(${ioDebug(e)})`)}))))`,
    );
  }
  const m = node && vfs.mounts.get(node.ino);
  if (!m) return errResp(500, `FsBackendInfo(Metrics(Daemon(Other(${dbg("object or filesystem doesn't exist")}))))`);
  if (m.fsType !== 'Rafs')
    return errResp(500, `FsBackendInfo(Metrics(Daemon(Other(${dbg('filesystem type mismatch, expect RAFS')}))))`);
  // serde_json::to_string(rafs.metadata()): the stand-in has no real superblock to show.
  return ok(JSON.stringify({ magic: 0x52414653, version: 0x500, sb_size: 8192, root_inode: 1, standin: true }));
});
for (const [p, name] of [
  ['/daemon/fuse/sendfd', 'Upgrade'],
  ['/daemon/fuse/takeover', 'Upgrade'],
  ['/daemon/fuse/resend', 'Upgrade'],
]) {
  ROUTES.set(v1(p), (req) => {
    if (methodBody(req) !== 'PUT:none') return BAD;
    needDaemon();
    if (p.endsWith('takeover')) {
      const e = fsmEvent('Takeover');
      if (e) return errResp(400, `${name}(DaemonAbnormal(UnexpectedEvent(${dbg(e)})))`);
      return ok();
    }
    return errResp(501, `${name}(DaemonAbnormal(Unsupported))`);
  });
}
ROUTES.set(v1('/mount'), (req) => {
  // MountHandler extracts the query before looking at the method.
  const mountpoint = queryPart(req.query, 'mountpoint');
  if (mountpoint === null) {
    return { handlerErr: `QueryString(${dbg("'mountpoint' should be specified in query string")})`, mountpoint };
  }
  const mb = methodBody(req);
  const run = (fn) => {
    try {
      fn();
      return { ...ok(), mountpoint };
    } catch (e) {
      if (!(e instanceof MountError)) throw e;
      return { ...errResp(kindStatus(e.kind), `Mount(MountFilesystem(${e.kind}))`), mountpoint };
    }
  };
  if (mb === 'POST:body' || mb === 'PUT:body') {
    const r = deserializeStruct(req.body, 'ApiMountCmd', MOUNT_CMD_FIELDS);
    if (r.err) return { handlerErr: r.err, mountpoint };
    return run(() => (mb === 'POST:body' ? doMount(mountpoint, r.value) : doRemount(mountpoint, r.value)));
  }
  if (mb === 'DELETE:none') return run(() => doUmount(mountpoint));
  return { ...BAD, mountpoint };
});
/**
 * The FsIoStats of `id`, or of the only RAFS instance when no id is given (metrics.rs
 * export_*: "With only one rafs instance, we allow caller to ask for an unknown ios name");
 * undefined is NoCounter.
 */
function fsStatsOf(id) {
  if (id !== null) return fsMetrics.get(id);
  return fsMetrics.size === 1 ? [...fsMetrics.values()][0] : undefined;
}
const noCounter = (name) => errResp(404, `${name}(Metrics(Stats(NoCounter)))`);
/** GET /metrics?id=: export_global_stats, the whole FsIoStats (serde_json::to_string). */
ROUTES.set(v1('/metrics'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  const stats = fsStatsOf(queryPart(req.query, 'id'));
  return stats ? ok(JSON.stringify(stats)) : noCounter('GlobalMetrics');
});
/**
 * GET /metrics/files?id=&latest=: per-file counters, which are off by default
 * (files_account_enabled false: an empty map), or with latest=true the latest read files
 * (an empty bitmap: []).
 */
ROUTES.set(v1('/metrics/files'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  if (!fsStatsOf(queryPart(req.query, 'id'))) return noCounter('FsFilesMetrics');
  return ok(queryPart(req.query, 'latest') === 'true' ? '[]' : '{}');
});
/** GET /metrics/pattern?id=: access patterns (off by default: none recorded). */
ROUTES.set(v1('/metrics/pattern'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  return fsStatsOf(queryPart(req.query, 'id')) ? ok('[]') : noCounter('Pattern');
});
/**
 * GET /metrics/backend and /metrics/blobcache: BACKEND_METRICS and BLOBCACHE_METRICS are keyed
 * by blob id and filled by the storage backends, which the stand-in does not have (it reads no
 * blob): NoCounter, as a nydusd whose RAFS has not created any.
 */
ROUTES.set(v1('/metrics/backend'), (req) => (methodBody(req) === 'GET:none' ? noCounter('BackendMetrics') : BAD));
ROUTES.set(v1('/metrics/blobcache'), (req) => (methodBody(req) === 'GET:none' ? noCounter('BlobcacheMetrics') : BAD));
ROUTES.set(v1('/metrics/inflight'), (req) => {
  if (methodBody(req) !== 'GET:none') return BAD;
  return errResp(500, 'InflightMetrics(Metrics(Daemon(Unsupported)))');
});
ROUTES.set('/api/v2/daemon', (req) => {
  if (methodBody(req) === 'GET:none') {
    needDaemon();
    return ok(daemonInfoJson(false));
  }
  if (methodBody(req) === 'PUT:body') return ROUTES.get(v1('/daemon'))(req);
  return BAD;
});
ROUTES.set('/api/v2/blobs', (req) => {
  if (req.method === 'GET' || req.method === 'PUT' || req.method === 'DELETE') {
    return errResp(501, 'GetBlobObjects(DaemonAbnormal(Unsupported))');
  }
  return BAD;
});

/** handle_http_request: returns { status, body, server, after, mountpoint } */
function handleHttpRequest(req) {
  const begin = process.hrtime.bigint();
  debug(`<--- ${METHOD_DEBUG[req.method]} Uri { string: ${dbg(req.uri)} }`, '/src/http_handler.rs:171');
  const parsed = httpCrateParse(absPath(req.uri));
  let res;
  if (parsed.err) {
    error(`Failed parse URI, ${parsed.err}`, '/src/http_handler.rs:200');
    res = errResp(400, 'BadRequest');
  } else {
    req.query = parsed.query;
    const route = ROUTES.get(parsed.path);
    if (!route) {
      res = errResp(404, 'NoRoute');
    } else {
      res = route(req);
      if (res.handlerErr) res = { ...errResp(400, res.handlerErr), mountpoint: res.mountpoint };
    }
    res.route = parsed.path;
  }
  const elapsed = Number(process.hrtime.bigint() - begin);
  debug(
    `---> ${METHOD_DEBUG[req.method]} Status Code: ${STATUS_DEBUG[res.status]}, Elapse: Ok(${durDbg(elapsed)}), ` +
      `Body Size: ${res.body ? Buffer.byteLength(res.body) : 0}`,
    '/src/http_handler.rs:181',
  );
  return { ...res, server: 'Nydus API' };
}

/** Append the NYDUSD_STANDIN_RECORD line of a served /api/v1/mount request (others are not recorded). */
function record(req, res) {
  if (!knob.record || res.route !== v1('/mount')) return;
  const mp = res.mountpoint === undefined ? null : res.mountpoint;
  const rec = {
    time: new Date().toISOString(),
    method: req.method,
    target: req.uri,
    rawQuery: req.query,
    mountpoint: mp,
    mountpointHex: mp === null ? null : Buffer.from(mp, 'utf8').toString('hex'),
    body: req.body ? req.body.toString('utf8') : null,
    bodyBase64: req.body ? req.body.toString('base64') : null,
    status: res.status,
    response: res.body,
  };
  try {
    fs.appendFileSync(knob.record, JSON.stringify(rec) + '\n');
  } catch (e) {
    warn(`stand-in: cannot append to NYDUSD_STANDIN_RECORD: ${e.message}`);
  }
}

/** One request served: its answer, and its line in the record file. */
function serveRequest(req) {
  const res = handleHttpRequest(req);
  record(req, res);
  return res;
}

module.exports = { serveRequest };

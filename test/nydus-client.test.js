'use strict';
/**
 * NydusClient against a nydusd process: by default test/helpers/nydusd-standin.js, or a real
 * nydusd when NYDUSD=/path/to/nydusd is set.
 *
 * Against a real nydusd:
 * - assertions on the stand-in's record file (NYDUSD_STANDIN_RECORD) are skipped and marked
 *   "stand-in only"; the same facts are checked server-side through GET /daemon's
 *   backend_collection, which nydusd keys by the mountpoint string exactly as it decoded it;
 * - the RAFS mount needs a real image: NYDUS_BOOTSTRAP=<bootstrap file> and
 *   NYDUS_RAFS_CONFIG=<config JSON text or file>; without them that test fails and says so;
 * - tests of stand-in-only behaviour (its knobs, its graceful SIGTERM) fail with the reason.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { NydusClient, encodeQueryValue, NYDUS_API_MAX_BODY_BYTES } = require('../dist/nydusd/nydus-client.js');
const { NydusApiError, InvalidOptionError } = require('../dist/common/errors.js');
const { sleep, tempDir } = require('./helpers/util.js');

const { DAEMON, REAL, rafsImage, standinTest } = require('./helpers/nydusd.js');
/** Start the daemon under test; by default wait until GET /daemon says RUNNING. */
async function startNydusd(t, { env = {}, args = null, dir = null, waitRunning = true } = {}) {
  dir = dir || tempDir(t);
  const d = {
    dir,
    apiSock: path.join(dir, 'api.sock'),
    vhostSock: path.join(dir, 'vhost.sock'),
    record: path.join(dir, 'record.jsonl'),
    output: '',
  };
  const childEnv = { ...process.env, ...env };
  delete childEnv.NODE_TEST_CONTEXT;
  if (!REAL) childEnv.NYDUSD_STANDIN_RECORD = d.record;
  // Kata's order: global flags after the subcommand.
  const argv = args || ['virtiofs', '--log-level', 'debug', '--apisock', d.apiSock, '--sock', d.vhostSock];
  d.child = spawn(DAEMON, argv, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  d.child.stdout.on('data', (b) => {
    d.output += b;
  });
  d.child.stderr.on('data', (b) => {
    d.output += b;
  });
  d.exit = null;
  d.exited = new Promise((resolve) =>
    d.child.on('exit', (code, signal) => {
      d.exit = { code, signal };
      resolve(d.exit);
    }),
  );
  t.after(() => stopNydusd(d));
  if (waitRunning) await waitUntilRunning(d);
  return d;
}

/** Poll GET /daemon until RUNNING; fail early when the daemon exits. */
async function waitUntilRunning(d, timeoutMs = 5000) {
  const client = new NydusClient(d.apiSock, { timeoutMs: 1000 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.exit) assert.fail(`nydusd exited (${JSON.stringify(d.exit)}) before RUNNING:\n${d.output}`);
    try {
      const info = await client.daemonInfo();
      if (info.state === 'RUNNING') return info;
    } catch (err) {
      if (err.code !== 'ERR_NYDUS_API_UNREACHABLE') throw err;
    }
    if (Date.now() > deadline) assert.fail(`nydusd not RUNNING within ${timeoutMs} ms:\n${d.output}`);
    await sleep(20);
  }
}

/** SIGTERM, then SIGKILL after a while (a real nydusd without a VMM does not exit on SIGTERM). */
async function stopNydusd(d, graceMs = 1500) {
  if (d.exit) return d.exit;
  d.child.kill('SIGTERM');
  const r = await Promise.race([d.exited, sleep(graceMs).then(() => null)]);
  if (r) return r;
  d.child.kill('SIGKILL');
  return d.exited;
}

function readRecord(d) {
  if (!fs.existsSync(d.record)) return [];
  return fs
    .readFileSync(d.record, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
const lastRecord = (d) => readRecord(d).at(-1);

/** Send raw bytes on a fresh connection and parse the first answer (without half-closing). */
function rawExchange(sockPath, request, { timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(sockPath);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err, val) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(val);
    };
    const timer = setTimeout(
      () =>
        finish(new Error(`no complete answer within ${timeoutMs} ms, got ${JSON.stringify(buf.toString('latin1'))}`)),
      timeoutMs,
    );
    sock.on('error', (e) => finish(e));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseAnswer(buf);
      if (r) finish(null, r);
    });
    sock.on('close', () => finish(new Error(`connection closed, got ${JSON.stringify(buf.toString('latin1'))}`)));
    if (request) sock.on('connect', () => sock.write(request));
  });
}
function parseAnswer(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] || 0);
  if (buf.length < end + 4 + len) return null;
  return {
    statusLine: lines[0],
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])[1]),
    headers,
    body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
  };
}
/** Build a request; `target` is sent byte for byte (UTF-8 for JS strings). */
function rawRequest(method, target, { body = null, headers = [] } = {}) {
  const b = body === null ? null : Buffer.from(body, 'utf8');
  const head = [`${method} ${target} HTTP/1.1`, 'Host: localhost', ...headers];
  if (b) head.push('Content-Type: application/json', `Content-Length: ${b.length}`);
  return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'utf8'), b || Buffer.alloc(0)]);
}
const json = (o) => JSON.stringify(o);

async function collection(d) {
  const info = await new NydusClient(d.apiSock).daemonInfo();
  return info.backend_collection;
}
function passthrough(source) {
  return { fs_type: 'passthrough_fs', source, config: '' };
}

/** Assert that p rejects with a NydusApiError carrying these fields. */
async function rejectsApi(p, fields) {
  let err;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'expected a rejection');
  assert.ok(err instanceof NydusApiError, `expected NydusApiError, got ${err && err.stack}`);
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof RegExp) assert.match(String(err[k]), v, `err.${k}`);
    else assert.deepEqual(err[k], v, `err.${k}`);
  }
  return err;
}

/* ------------------------------------------------------------------ happy paths */

test('daemonInfo reports RUNNING with the DaemonInfo fields, on the wire as nydusd sends them', async (t) => {
  const d = await startNydusd(t);
  const info = await new NydusClient(d.apiSock).daemonInfo();
  assert.equal(info.state, 'RUNNING');
  for (const k of ['package_ver', 'git_commit', 'build_time', 'profile', 'rustc']) {
    assert.equal(typeof info.version[k], 'string', `version.${k}`);
  }
  assert.equal(info.id, null);
  assert.equal(info.supervisor, null);
  assert.deepEqual(info.backend_collection, {});

  const raw = await rawExchange(d.apiSock, rawRequest('GET', '/api/v1/daemon'));
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.server, 'Nydus API');
  assert.equal(raw.headers['content-type'], 'application/json');
  assert.equal(raw.headers.connection, 'keep-alive');
  assert.deepEqual(JSON.parse(raw.body), info);
});

test('mount passthrough_fs at /containers, then rafs, then umount both', async (t) => {
  const d = await startNydusd(t);
  const share = fs.mkdtempSync(path.join(d.dir, 'share-'));
  const { bootstrap, config } = rafsImage(d.dir);
  const client = new NydusClient(d.apiSock);
  const rafsMp = '/rafs/0123456789abcdef/lowerdir';

  await client.mount('/containers', passthrough(share));
  await client.mount(rafsMp, { fs_type: 'rafs', source: bootstrap, config, prefetch_files: ['/etc', '/usr/bin'] });

  const coll = await collection(d);
  assert.deepEqual(Object.keys(coll).sort(), ['/containers', rafsMp]);
  assert.equal(coll['/containers'].backend_type, 'PassthroughFs');
  assert.equal(coll['/containers'].mountpoint, '/containers');
  assert.equal(coll['/containers'].config, null);
  assert.equal(coll[rafsMp].backend_type, 'Rafs');
  assert.equal(typeof coll[rafsMp].mounted_time, 'string');

  if (!REAL) {
    // stand-in only: the exact bytes the server received.
    const [p, r] = readRecord(d);
    assert.equal(p.method, 'POST');
    assert.equal(p.rawQuery, 'mountpoint=%2Fcontainers');
    assert.deepEqual(JSON.parse(p.body), { fs_type: 'passthrough_fs', source: share, config: '' });
    assert.deepEqual(JSON.parse(r.body), {
      fs_type: 'rafs',
      source: bootstrap,
      config,
      prefetch_files: ['/etc', '/usr/bin'],
    });
  }

  await client.umount(rafsMp);
  await client.umount('/containers');
  assert.deepEqual(await collection(d), {});
  if (!REAL) {
    // stand-in only: DELETE carried no body at all.
    const del = readRecord(d).filter((r) => r.method === 'DELETE');
    assert.equal(del.length, 2);
    for (const r of del) assert.equal(r.body, null);
  }

  // A 204 on the wire: Server header, and neither Content-Type nor Content-Length (no body).
  const raw = await rawExchange(
    d.apiSock,
    rawRequest('POST', `/api/v1/mount?mountpoint=${encodeQueryValue('/wire')}`, { body: json(passthrough(share)) }),
  );
  assert.equal(raw.statusLine, 'HTTP/1.1 204 ');
  assert.equal(raw.headers.server, 'Nydus API');
  assert.equal(raw.headers['content-type'], undefined);
  assert.equal(raw.headers['content-length'], undefined);
  await client.umount('/wire');
});

test('mountpoints with spaces, +, &, #, %, =, ?, quotes, controls and non-ASCII arrive byte-exact', async (t) => {
  const d = await startNydusd(t);
  const share = fs.mkdtempSync(path.join(d.dir, 'share-'));
  const client = new NydusClient(d.apiSock, { keepAlive: true });
  t.after(() => client.close());
  assert.equal(encodeQueryValue('/a b+&#%é~'), '%2Fa%20b%2B%26%23%25%C3%A9~');
  const mountpoints = [
    '/rafs/é 日本+a&b#c/lowerdir',
    '/rafs/a b/lowerdir',
    '/rafs/plus+plus/lowerdir',
    '/rafs/amp&mountpoint=/evil/lowerdir',
    '/rafs/hash#frag?q=1/lowerdir',
    '/rafs/100%/lowerdir',
    '/rafs/%41%2F%zz%/lowerdir',
    '/rafs/eq=x?mark/lowerdir',
    '/rafs/🙂\u00a0nbsp\u200b/lowerdir',
    '/rafs/quote"<>{}|\\^`/lowerdir',
    "/rafs/semi;colon,comma'apos!$()*/lowerdir",
    '/rafs/tab\tnl\ncr\r/lowerdir',
  ];
  for (const mp of mountpoints) {
    await client.mount(mp, passthrough(share));
    const coll = await collection(d);
    // Server-side, valid for a real nydusd too: the collection is keyed by the decoded string.
    assert.deepEqual(Object.keys(coll), [mp], `mounted ${JSON.stringify(mp)}`);
    if (!REAL) {
      // stand-in only: the record holds what the server decoded, and the raw query it got.
      const rec = lastRecord(d);
      assert.equal(rec.method, 'POST');
      assert.equal(rec.mountpoint, mp);
      assert.equal(rec.mountpointHex, Buffer.from(mp, 'utf8').toString('hex'));
      assert.equal(rec.rawQuery, `mountpoint=${encodeQueryValue(mp)}`);
    }
    await client.umount(mp);
    assert.deepEqual(await collection(d), {}, `unmounted ${JSON.stringify(mp)}`);
    if (!REAL) assert.equal(lastRecord(d).mountpoint, mp);
  }
});

/* ------------------------------------------------------------------ error paths */

test('error answers of nydusd', async (t) => {
  const d = await startNydusd(t);
  const share = fs.mkdtempSync(path.join(d.dir, 'share-'));
  const client = new NydusClient(d.apiSock);
  const mountTarget = (mp) => `/api/v1/mount?mountpoint=${encodeQueryValue(mp)}`;

  await t.test('missing mountpoint query: 400 QueryString', async () => {
    const r = await rawExchange(d.apiSock, rawRequest('POST', '/api/v1/mount', { body: json(passthrough(share)) }));
    assert.equal(r.status, 400);
    assert.equal(r.headers.server, 'Nydus API');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), {
      code: 'UNDEFINED',
      message: 'QueryString("\'mountpoint\' should be specified in query string")',
    });
  });

  await t.test("unknown fs_type: 500 with nydusd's message", async () => {
    const err = await rejectsApi(client.mount('/x-unknown', { fs_type: 'xfs', source: share, config: '' }), {
      code: 'ERR_NYDUS_API',
      status: 500,
      apiCode: 'UNDEFINED',
      apiMessage: /only 'rafs' and 'passthrough_fs' are supported, but xfs was specified/,
    });
    assert.match(err.message, /POST \/api\/v1\/mount for mountpoint "\/x-unknown"/);
    assert.match(err.message, /HTTP 500/);
    assert.ok(err.message.includes(d.apiSock), err.message);
  });

  await t.test('DELETE with a body: 400 BadRequest, nothing unmounted', async () => {
    await client.mount('/containers', passthrough(share));
    const r = await rawExchange(d.apiSock, rawRequest('DELETE', mountTarget('/containers'), { body: '{}' }));
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), { code: 'UNDEFINED', message: 'BadRequest' });
    assert.deepEqual(Object.keys(await collection(d)), ['/containers']);
  });

  await t.test('mounting twice: 500 UNDEFINED "already exists"', async () => {
    const err = await rejectsApi(client.mount('/containers', passthrough(share)), {
      code: 'ERR_NYDUS_API',
      status: 500,
      apiCode: 'UNDEFINED',
      apiMessage: /already exists/,
    });
    assert.match(err.message, /"\/containers"/);
    await client.umount('/containers');
  });

  await t.test('umount of what is not mounted: 500 "doesn\'t exist"', async () => {
    await rejectsApi(client.umount('/never-mounted'), {
      code: 'ERR_NYDUS_API',
      status: 500,
      apiCode: 'UNDEFINED',
      apiMessage: /doesn't exist/,
    });
  });

  await t.test('passthrough_fs source that does not exist: 500', async () => {
    await rejectsApi(client.mount('/nosrc', passthrough(path.join(d.dir, 'missing'))), {
      code: 'ERR_NYDUS_API',
      status: 500,
      apiMessage: /No such file or directory/,
    });
  });

  await t.test('relative mountpoint: 500 from the VFS path walk', async () => {
    await rejectsApi(client.mount('relative/path', passthrough(share)), {
      code: 'ERR_NYDUS_API',
      status: 500,
      apiMessage: /Invalid argument/,
    });
  });

  await t.test('wrong method is 400 BadRequest, unknown route 404 NoRoute', async () => {
    const r1 = await rawExchange(d.apiSock, rawRequest('GET', mountTarget('/containers')));
    assert.equal(r1.status, 400);
    assert.deepEqual(JSON.parse(r1.body), { code: 'UNDEFINED', message: 'BadRequest' });
    const r2 = await rawExchange(d.apiSock, rawRequest('GET', '/api/v1/nope'));
    assert.equal(r2.status, 404);
    assert.deepEqual(JSON.parse(r2.body), { code: 'UNDEFINED', message: 'NoRoute' });
    const r3 = await rawExchange(d.apiSock, rawRequest('GET', '/api/v1/daemon/'));
    assert.equal(r3.status, 404, 'routes match exactly, no trailing slash');
  });

  await t.test('malformed or incomplete MountCmd: 400 ParseBody', async () => {
    const r1 = await rawExchange(d.apiSock, rawRequest('POST', mountTarget('/pb'), { body: '{"source":' }));
    assert.equal(r1.status, 400);
    assert.match(JSON.parse(r1.body).message, /^ParseBody\(Error\(/);
    const r2 = await rawExchange(
      d.apiSock,
      rawRequest('POST', mountTarget('/pb'), { body: json({ fs_type: 'passthrough_fs', source: share }) }),
    );
    assert.equal(r2.status, 400);
    assert.match(JSON.parse(r2.body).message, /missing field `config`/);
  });

  await t.test('raw query bytes are decoded like a form: why the client encodes', async () => {
    // `+` is a space.
    let r = await rawExchange(
      d.apiSock,
      rawRequest('POST', '/api/v1/mount?mountpoint=/raw+plus', { body: json(passthrough(share)) }),
    );
    assert.equal(r.status, 204);
    assert.deepEqual(Object.keys(await collection(d)), ['/raw plus']);
    await client.umount('/raw plus');
    // A raw `#` starts a fragment: the mountpoint is cut there.
    r = await rawExchange(
      d.apiSock,
      rawRequest('POST', '/api/v1/mount?mountpoint=/raw#frag', { body: json(passthrough(share)) }),
    );
    assert.equal(r.status, 204);
    assert.deepEqual(Object.keys(await collection(d)), ['/raw']);
    await client.umount('/raw');
    // `&` ends the value.
    r = await rawExchange(
      d.apiSock,
      rawRequest('POST', '/api/v1/mount?mountpoint=/a&b', { body: json(passthrough(share)) }),
    );
    assert.equal(r.status, 204);
    assert.deepEqual(Object.keys(await collection(d)), ['/a']);
    await client.umount('/a');
    // Raw `"` or raw non-ASCII in the target: the URI does not parse, 400 BadRequest.
    for (const target of [
      '/api/v1/mount?mountpoint=/q"q',
      '/api/v1/mount?mountpoint=/é',
      '/api/v1/mount?mountpoint=/<x>',
    ]) {
      r = await rawExchange(d.apiSock, rawRequest('POST', target, { body: json(passthrough(share)) }));
      assert.equal(r.status, 400, target);
      assert.equal(r.headers.server, 'Nydus API');
      assert.deepEqual(JSON.parse(r.body), { code: 'UNDEFINED', message: 'BadRequest' });
    }
    assert.deepEqual(await collection(d), {});
  });

  await t.test('a chunked body is not read: 400 BadRequest', async () => {
    const body = json(passthrough(share));
    const req = Buffer.from(
      `POST ${mountTarget('/chunked')} HTTP/1.1\r\nHost: localhost\r\n` +
        `Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n` +
        `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    const r = await rawExchange(d.apiSock, req);
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), { code: 'UNDEFINED', message: 'BadRequest' });
    assert.deepEqual(await collection(d), {});
  });

  await t.test('a body over 51200 bytes: HTTP-layer 400 with a non-JSON body; the client refuses first', async () => {
    const big = 'x'.repeat(NYDUS_API_MAX_BODY_BYTES + 1);
    const r = await rawExchange(d.apiSock, rawRequest('POST', mountTarget('/big'), { body: big }));
    assert.equal(r.status, 400);
    assert.equal(r.headers.server, 'Firecracker API');
    assert.throws(() => JSON.parse(r.body), "the HTTP layer's error body is not valid JSON");
    assert.match(r.body, /larger than the limit of 51200/);

    const before = readRecord(d).length;
    await assert.rejects(
      client.mount('/big', { fs_type: 'rafs', source: '/x', config: big }),
      (e) => e instanceof InvalidOptionError && e.option === 'cmd' && /51200/.test(e.message),
    );
    assert.equal(readRecord(d).length, before, 'nothing was sent');
  });

  await t.test('a request line over 1022 bytes: HTTP-layer 400; the client refuses first', async () => {
    const long = `/rafs/${'a'.repeat(1000)}/lowerdir`;
    const r = await rawExchange(d.apiSock, rawRequest('DELETE', mountTarget(long)));
    assert.equal(r.status, 400);
    assert.equal(r.headers.server, 'Firecracker API');
    await assert.rejects(client.umount(long), (e) => e instanceof InvalidOptionError && e.option === 'mountpoint');
    await assert.rejects(
      client.mount(`/${'é'.repeat(200)}`, passthrough(share)),
      (e) => e instanceof InvalidOptionError && /percent-encoded/.test(e.message),
    );
  });

  await t.test('NUL bytes are refused before sending (nydusd aborts on them)', async () => {
    await assert.rejects(
      client.mount('/nul', passthrough(`${share}\0x`)),
      (e) => e instanceof InvalidOptionError && e.option === 'cmd.source',
    );
    await assert.rejects(client.umount('/nul\0'), (e) => e instanceof InvalidOptionError && e.option === 'mountpoint');
    assert.equal((await client.daemonInfo()).state, 'RUNNING');
  });

  await t.test('the 11th simultaneous connection is answered 503 and closed', async () => {
    await sleep(50); // let earlier client connections close
    const held = [];
    t.after(() => held.forEach((s) => s.destroy()));
    for (let i = 0; i < 10; i++) {
      const s = net.connect(d.apiSock);
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      held.push(s);
    }
    await sleep(50);
    const r = await rawExchange(d.apiSock, null);
    assert.equal(r.status, 503);
    assert.equal(r.headers.server, 'Firecracker API');
    assert.equal(r.headers.connection, 'close');
    held.forEach((s) => s.destroy());
    await sleep(50);
    assert.equal((await client.daemonInfo()).state, 'RUNNING');
  });
});

/* ------------------------------------------------------------------ misbehaving servers */

/** An HTTP server on a unix socket in a temp dir, for answers nydusd would not give. */
async function fakeServer(t, handler) {
  const dir = tempDir(t);
  const sock = path.join(dir, 'fake.sock');
  const server = http.createServer(handler);
  await new Promise((r) => server.listen(sock, r));
  t.after(
    () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  );
  return sock;
}

test('a non-JSON error body keeps the status, and the raw text (capped at 4 KiB)', async (t) => {
  const sock = await fakeServer(t, (req, res) => {
    if (req.url.startsWith('/api/v1/mount')) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('upstream exploded');
    } else if (req.url === '/api/v1/daemon') {
      res.writeHead(503, { 'Content-Type': 'text/plain' });
      res.end('y'.repeat(10000));
    }
  });
  const client = new NydusClient(sock);
  const err = await rejectsApi(client.umount('/x'), {
    code: 'ERR_NYDUS_API',
    status: 502,
    apiCode: undefined,
    apiMessage: 'upstream exploded',
  });
  assert.match(err.message, /HTTP 502: upstream exploded/);
  const long = await rejectsApi(client.daemonInfo(), { code: 'ERR_NYDUS_API', status: 503, apiCode: undefined });
  assert.ok(long.apiMessage.startsWith('y'.repeat(4096)));
  assert.ok(long.apiMessage.length < 4200, `apiMessage capped, got ${long.apiMessage.length} chars`);
});

test('a 200 that is not a DaemonInfo is ERR_NYDUS_API_RESPONSE', async (t) => {
  let body = 'not json';
  const sock = await fakeServer(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(body);
  });
  const client = new NydusClient(sock);
  await rejectsApi(client.daemonInfo(), { code: 'ERR_NYDUS_API_RESPONSE', status: 200 });
  body = '{"version":{}}';
  await rejectsApi(client.daemonInfo(), { code: 'ERR_NYDUS_API_RESPONSE', status: 200 });
});

test('an answer bigger than maxResponseBytes is cut off: ERR_NYDUS_API_RESPONSE', async (t) => {
  const sock = await fakeServer(t, (req, res) => {
    if (req.url === '/api/v1/daemon') {
      res.writeHead(200, { 'Content-Type': 'application/json' }); // declared length 2 MiB
      res.end(Buffer.alloc(2 * 1024 * 1024, 0x20));
    } else {
      res.writeHead(500); // chunked, no length: counted as it arrives
      for (let i = 0; i < 20; i++) res.write('z'.repeat(100));
      res.end();
    }
  });
  await rejectsApi(new NydusClient(sock).daemonInfo(), {
    code: 'ERR_NYDUS_API_RESPONSE',
    status: 200,
    message: /maxResponseBytes/,
  });
  await rejectsApi(new NydusClient(sock, { maxResponseBytes: 1000 }).umount('/x'), {
    code: 'ERR_NYDUS_API_RESPONSE',
    status: 500,
  });
});

test('a server that never answers: ERR_NYDUS_API_TIMEOUT', async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'silent.sock');
  const held = new Set();
  const server = net.createServer((s) => {
    held.add(s);
    s.resume();
  });
  await new Promise((r) => server.listen(sock, r));
  t.after(() => {
    held.forEach((s) => s.destroy());
    server.close();
  });
  const started = Date.now();
  await rejectsApi(new NydusClient(sock, { timeoutMs: 200 }).daemonInfo(), {
    code: 'ERR_NYDUS_API_TIMEOUT',
    status: 0,
    message: /within 200 ms/,
  });
  const took = Date.now() - started;
  assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
});

test('no socket, or a socket nobody listens on: ERR_NYDUS_API_UNREACHABLE naming the path', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'missing.sock');
  const err = await rejectsApi(new NydusClient(missing).daemonInfo(), { code: 'ERR_NYDUS_API_UNREACHABLE', status: 0 });
  assert.ok(err.message.includes(missing), err.message);
  assert.equal(err.cause.code, 'ENOENT');

  // A stale socket file: its listener's process exited without closing it.
  const stale = path.join(dir, 'stale.sock');
  await new Promise((resolve, reject) => {
    const c = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`],
      { stdio: 'ignore' },
    );
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`helper exited ${code}`))));
  });
  assert.ok(fs.lstatSync(stale).isSocket());
  const err2 = await rejectsApi(new NydusClient(stale).umount('/x'), { code: 'ERR_NYDUS_API_UNREACHABLE' });
  assert.equal(err2.cause.code, 'ECONNREFUSED');
  assert.ok(err2.message.includes(stale));
});

test('invalid client options are refused up front', () => {
  assert.throws(() => new NydusClient(''), InvalidOptionError);
  assert.throws(
    () => new NydusClient(`/tmp/${'s'.repeat(120)}`),
    (e) => e.option === 'apiSockPath' && /107/.test(e.message),
  );
  assert.throws(
    () => new NydusClient('/tmp/x.sock', { timeoutMs: 0 }),
    (e) => e.option === 'timeoutMs',
  );
  assert.throws(
    () => new NydusClient('/tmp/x.sock', { maxResponseBytes: 1.5 }),
    (e) => e.option === 'maxResponseBytes',
  );
});

/* ------------------------------------------------------------------ lifecycle around the API */

test('the INIT phase: a client polling GET /daemon sees INIT, then RUNNING', async (t) => {
  const d = await startNydusd(t, { env: { NYDUSD_STANDIN_INIT_MS: '600' }, waitRunning: false });
  const client = new NydusClient(d.apiSock, { timeoutMs: 1000 });
  const seen = [];
  const deadline = Date.now() + 5000;
  for (;;) {
    assert.ok(Date.now() < deadline, `not RUNNING in time; states seen ${seen}:\n${d.output}`);
    if (d.exit) assert.fail(`exited: ${JSON.stringify(d.exit)}\n${d.output}`);
    try {
      const { state } = await client.daemonInfo();
      if (seen.at(-1) !== state) {
        seen.push(state);
        if (state !== 'RUNNING') {
          assert.equal(fs.existsSync(d.vhostSock), false, 'the vhost-user socket is bound only when RUNNING');
        }
      }
      if (state === 'RUNNING') break;
    } catch (err) {
      if (err.code !== 'ERR_NYDUS_API_UNREACHABLE') throw err;
    }
    await sleep(20);
  }
  if (REAL) {
    // A real nydusd in virtiofs mode opens its API only once RUNNING (the knob is ignored).
    assert.deepEqual(seen, ['RUNNING']);
  } else {
    // stand-in only: NYDUSD_STANDIN_INIT_MS serves the API during INIT.
    assert.deepEqual(seen, ['INIT', 'RUNNING']);
    assert.match(d.output, /WARN/);
  }
  assert.ok(fs.lstatSync(d.vhostSock).isSocket());
});

test('a kept-alive client keeps working across requests and a daemon restart; close() ends it', async (t) => {
  const d1 = await startNydusd(t);
  const client = new NydusClient(d1.apiSock, { keepAlive: true, timeoutMs: 2000 });
  t.after(() => client.close());
  for (let i = 0; i < 5; i++) assert.equal((await client.daemonInfo()).state, 'RUNNING');
  await stopNydusd(d1);
  const d2 = await startNydusd(t, { dir: d1.dir });
  assert.equal(d2.apiSock, d1.apiSock);
  assert.equal((await client.daemonInfo()).state, 'RUNNING');
  client.close();
  client.close();
  await rejectsApi(client.daemonInfo(), { code: 'ERR_NYDUS_API', status: 0, message: /closed/ });
});

test('command-line errors exit 2 with clap\'s "error:" message', async (t) => {
  const dir = tempDir(t);
  const run = (args) =>
    new Promise((resolve) => {
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const c = spawn(DAEMON, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (b) => {
        err += b;
      });
      c.on('exit', (code) => resolve({ code, err }));
    });
  const sock = path.join(dir, 'v.sock');
  let r = await run(['virtiofs', '--sock', sock, '--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^error: unexpected argument '--no-such-flag' found/);
  r = await run(['virtiofs', '--apisock', path.join(dir, 'a.sock')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /^error: the following required arguments were not provided:\n\s+--sock <sock>/);
  r = await run(['virtiofs', '--sock', sock, '--log-level=verbose']);
  assert.equal(r.code, 2);
  assert.match(r.err, /invalid value 'verbose'/);
  r = await run(['--apisock', path.join(dir, 'a.sock')]);
  assert.equal(r.code, 2, 'no subcommand means FUSE mode, which requires --mountpoint');
  assert.equal(fs.existsSync(sock), false, 'nothing was bound');
});

test("log lines have nydusd's format", async (t) => {
  const d = await startNydusd(t);
  const lines = d.output.split('\n').filter(Boolean);
  // nydusd colours its level names with ANSI escapes (ESC [ … m): strip them.
  // eslint-disable-next-line no-control-regex
  const clean = (l) => l.replace(/\x1b\[[0-9;]*m/g, '');
  assert.ok(lines.length > 0);
  for (const l of lines) {
    assert.match(
      clean(l),
      /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} [+-]\d\d:\d\d\] (ERROR|WARN|INFO|DEBUG|TRACE) /,
      l,
    );
  }
  assert.ok(
    lines.some((l) => / INFO /.test(l) && !l.includes('\x1b')),
    'INFO lines are not coloured',
  );
});

standinTest(
  'SIGTERM: exit 0, API socket removed, vhost-user socket left behind',
  'a real nydusd with no VMM connected blocks in its shutdown path and needs SIGKILL',
  async (t) => {
    const d = await startNydusd(t);
    d.child.kill('SIGTERM');
    const exit = await Promise.race([d.exited, sleep(3000).then(() => 'timeout')]);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(fs.existsSync(d.apiSock), false);
    assert.ok(fs.lstatSync(d.vhostSock).isSocket());
    assert.match(d.output, /INFO nydusd quits/);
  },
);

standinTest(
  'PUT /daemon/exit answers 204, then the daemon exits',
  'a real nydusd answers 204 but, with no VMM connected, then hangs like on SIGTERM',
  async (t) => {
    const d = await startNydusd(t);
    const r = await rawExchange(d.apiSock, rawRequest('PUT', '/api/v1/daemon/exit'));
    assert.equal(r.status, 204);
    assert.deepEqual(await Promise.race([d.exited, sleep(3000).then(() => 'timeout')]), { code: 0, signal: null });
    assert.match(d.output, /exit daemon by http request/);
  },
);

standinTest(
  'NYDUSD_STANDIN_IGNORE_SIGTERM: SIGTERM is logged but only SIGKILL ends it',
  'the knob exists only in the stand-in',
  async (t) => {
    const d = await startNydusd(t, { env: { NYDUSD_STANDIN_IGNORE_SIGTERM: '1' } });
    d.child.kill('SIGTERM');
    assert.equal(await Promise.race([d.exited, sleep(400).then(() => 'alive')]), 'alive');
    assert.match(d.output, /from Ready to Die, input \[Stop\]/);
    // The fs service survives (mounts still answer); the daemon object does not.
    await rejectsApi(new NydusClient(d.apiSock).umount('/none'), { status: 500 });
    d.child.kill('SIGKILL');
    assert.deepEqual(await d.exited, { code: null, signal: 'SIGKILL' });
  },
);

standinTest(
  'NYDUSD_STANDIN_EXIT_EARLY: exits with the code before the API socket exists',
  'the knob exists only in the stand-in',
  async (t) => {
    const d = await startNydusd(t, { env: { NYDUSD_STANDIN_EXIT_EARLY: '3' }, waitRunning: false });
    assert.deepEqual(await d.exited, { code: 3, signal: null });
    assert.equal(fs.existsSync(d.apiSock), false);
    assert.ok(fs.lstatSync(d.vhostSock).isSocket(), 'the vhost-user socket is left behind');
    assert.match(d.output, /ERROR/);
    await rejectsApi(new NydusClient(d.apiSock).daemonInfo(), { code: 'ERR_NYDUS_API_UNREACHABLE' });
  },
);

standinTest(
  'NYDUSD_STANDIN_SLOW_MS: requests are served one at a time',
  'the knob exists only in the stand-in',
  async (t) => {
    const d = await startNydusd(t, { env: { NYDUSD_STANDIN_SLOW_MS: '150' } });
    const started = Date.now();
    await Promise.all([0, 1, 2].map(() => new NydusClient(d.apiSock).daemonInfo()));
    assert.ok(Date.now() - started >= 400, `three requests took ${Date.now() - started} ms`);
    await rejectsApi(new NydusClient(d.apiSock, { timeoutMs: 100 }).daemonInfo(), { code: 'ERR_NYDUS_API_TIMEOUT' });
  },
);

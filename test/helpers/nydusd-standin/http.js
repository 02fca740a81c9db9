'use strict';
/**
 * The API socket's HTTP/1.1 server, as dbs-uhttp (openanolis/dbs-uhttp) is: its request
 * parser (1 KiB line buffer, 50 KiB body cap), its 10-connection limit, its response format,
 * and one request served at a time in arrival order, as by nydusd's single HTTP thread.
 * DEVIATION: after a request-parsing error the connection is closed once the 400 is written
 * (dbs-uhttp keeps it open with its parser in an undefined state).
 */
const { setTimeout: sleep } = require('node:timers/promises');
const { knob } = require('./env');
const { error } = require('./log');

/** dbs-uhttp: per-connection read buffer; a request or header line must fit in it. */
const UHTTP_BUFFER = 1024;
/** dbs-uhttp MAX_PAYLOAD_SIZE (nydus never raises it). */
const UHTTP_MAX_PAYLOAD = 51200;
/** dbs-uhttp MAX_CONNECTIONS. */
const UHTTP_MAX_CONNECTIONS = 10;
const SERVER_FULL =
  'HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n' +
  '{ "error": "Too many open connections" }';

const METHOD_DEBUG = { GET: 'Get', HEAD: 'Head', POST: 'Post', PUT: 'Put', PATCH: 'Patch', DELETE: 'Delete' };

/** Response::write_all */
function serializeResponse({ status, body, server, version = 'HTTP/1.1' }) {
  let head = `${version} ${status} \r\nServer: ${server}\r\nConnection: keep-alive\r\n`;
  const buf = body === null || body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
  if (buf.length !== 0) head += `Content-Type: application/json\r\nContent-Length: ${buf.length}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), buf]);
}
const parseErrorResponse = (inner) => serializeResponse({
  status: 400,
  server: 'Firecracker API',
  body: `{ "error": "${inner}\nAll previous unanswered requests will be dropped." }`,
});

let serial = Promise.resolve();
/** The real server runs every request on one thread, in arrival order. */
function enqueue(fn) {
  serial = serial.then(fn).catch((e) => error(`stand-in internal error: ${e && e.stack}`));
}

const connections = new Set();

class RequestParseError extends Error {}
const HEADER_KEYS = ['content-length', 'content-type', 'expect', 'transfer-encoding', 'server', 'accept', 'accept-encoding'];

/** Parse one header line as Headers::parse_header_line; mutates req.headers. */
function parseHeaderLine(req, lineBuf) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(lineBuf);
  } catch {
    throw new RequestParseError('Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 sequence');
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw new RequestParseError(`Invalid header. Reason: Header is incorrectly formatted. Key: ${text}`);
  const rawName = text.slice(0, colon);
  const rawValue = text.slice(colon + 1);
  const name = rawName.trim().toLowerCase();
  const value = rawValue.trim();
  if (!HEADER_KEYS.includes(name)) return; // custom header: kept, unused
  switch (name) {
    case 'content-length':
      if (!/^\+?\d+$/.test(value) || Number(value) > 0xffffffff) {
        throw new RequestParseError(`Invalid header. Reason: Invalid value. Key:${rawName}; Value:${rawValue}`);
      }
      req.contentLength = Number(value);
      break;
    case 'transfer-encoding':
      if (value === 'chunked') req.chunked = true; // flagged, never decoded
      break;
    case 'expect':
      if (value === '100-continue') req.expect = true;
      break;
    case 'accept-encoding': {
      if (value === '') throw new RequestParseError('Invalid request.');
      for (const enc of value.split(',')) {
        const e = enc.trim();
        if (e === 'identity;q=0' || (e === '*;q=0' && !value.includes('identity'))) {
          throw new RequestParseError(`Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:${enc}`);
        }
      }
      break;
    }
    default:
      break; // content-type / accept with unsupported values are ignored
  }
}

/** Serve one API connection, handing each parsed request to handle(req) -> response. */
function onConnection(sock, handle) {
  if (connections.size >= UHTTP_MAX_CONNECTIONS) {
    sock.end(SERVER_FULL);
    sock.on('error', () => {});
    setTimeout(() => sock.destroy(), 100).unref();
    return;
  }
  connections.add(sock);
  const conn = { buf: Buffer.alloc(0), state: 'line', req: null, dead: false };
  const drop = () => {
    conn.dead = true;
    connections.delete(sock);
  };
  sock.on('error', drop);
  sock.on('close', drop);
  // A read-side hang-up closes the connection at once; queued answers are dropped.
  sock.on('end', () => {
    drop();
    sock.destroy();
  });
  const send = (bytes) => {
    if (!conn.dead && !sock.destroyed) sock.write(bytes);
  };
  const failParse = (msg) => {
    conn.state = 'failed';
    enqueue(async () => {
      if (knob.slowMs) await sleep(knob.slowMs);
      send(parseErrorResponse(msg));
      // DEVIATION: dbs-uhttp keeps the connection with a confused parser; close it instead.
      if (!conn.dead) sock.end();
    });
  };
  // A request or header line must fit, with its CRLF, in dbs-uhttp's 1024-byte buffer.
  const tooLong = () => new RequestParseError(conn.state === 'line'
    ? 'Invalid request.'
    : `Invalid header. Reason: Invalid content length. Header: ${conn.buf.subarray(0, UHTTP_BUFFER).toString('utf8')}`);
  const takeLine = () => {
    const i = conn.buf.indexOf('\r\n');
    if (i < 0) {
      if (conn.buf.length >= UHTTP_BUFFER) throw tooLong();
      return null;
    }
    if (i + 2 > UHTTP_BUFFER) throw tooLong();
    const line = conn.buf.subarray(0, i);
    conn.buf = conn.buf.subarray(i + 2);
    return line;
  };
  const parse = () => {
    for (;;) {
      if (conn.state === 'failed') return;
      if (conn.state === 'line') {
        const line = takeLine();
        if (line === null) return;
        const sp1 = line.indexOf(0x20);
        const sp2 = sp1 < 0 ? -1 : line.indexOf(0x20, sp1 + 1);
        if (sp1 < 0 || sp2 < 0) throw new RequestParseError('Invalid request.');
        const method = line.subarray(0, sp1).toString('latin1');
        const uriBytes = line.subarray(sp1 + 1, sp2);
        const version = line.subarray(sp2 + 1).toString('latin1');
        if (!Object.hasOwn(METHOD_DEBUG, method)) throw new RequestParseError('Invalid HTTP Method: Unsupported HTTP method.');
        if (uriBytes.length === 0) throw new RequestParseError('Invalid URI: Empty URI not allowed.');
        let uri;
        try {
          uri = new TextDecoder('utf-8', { fatal: true }).decode(uriBytes);
        } catch {
          throw new RequestParseError('Invalid URI: Cannot parse URI as UTF-8.');
        }
        if (version !== 'HTTP/1.0' && version !== 'HTTP/1.1') {
          throw new RequestParseError('Invalid HTTP Version: Unsupported HTTP version.');
        }
        conn.req = { method, uri, version, contentLength: 0, chunked: false, expect: false, body: null };
        conn.state = 'headers';
      } else if (conn.state === 'headers') {
        const line = takeLine();
        if (line === null) return;
        if (line.length === 0) {
          const req = conn.req;
          if (req.contentLength === 0) {
            conn.state = 'ready';
          } else {
            if (req.contentLength > UHTTP_MAX_PAYLOAD) {
              throw new RequestParseError(`Request payload with size ${req.contentLength} is larger than the limit of ` +
                `${UHTTP_MAX_PAYLOAD} allowed by server.`);
            }
            if (req.expect) {
              send(serializeResponse({ status: 100, server: 'Firecracker API', body: null, version: req.version }));
            }
            conn.state = 'body';
          }
        } else {
          parseHeaderLine(conn.req, line);
        }
      } else if (conn.state === 'body') {
        if (conn.buf.length < conn.req.contentLength) return;
        conn.req.body = Buffer.from(conn.buf.subarray(0, conn.req.contentLength));
        conn.buf = conn.buf.subarray(conn.req.contentLength);
        conn.state = 'ready';
      }
      if (conn.state === 'ready') {
        const req = conn.req;
        conn.req = null;
        conn.state = 'line';
        enqueue(async () => {
          if (knob.slowMs) await sleep(knob.slowMs);
          const res = handle(req);
          send(serializeResponse(res));
          if (res.after) {
            if (!conn.dead && !sock.destroyed) sock.write('', () => setImmediate(res.after));
            else setImmediate(res.after);
          }
        });
      }
    }
  };
  sock.on('data', (chunk) => {
    if (conn.state === 'failed') return;
    conn.buf = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
    try {
      parse();
    } catch (e) {
      if (!(e instanceof RequestParseError)) throw e;
      failParse(e.message);
    }
  });
}

module.exports = { METHOD_DEBUG, onConnection };

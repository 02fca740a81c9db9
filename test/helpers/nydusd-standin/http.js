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
/** dbs-uhttp's 400 for a request it cannot parse. */
const parseErrorResponse = (inner) =>
  serializeResponse({
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

/** A request dbs-uhttp cannot parse; its message is the text of the 400. */
class RequestParseError extends Error {}
const HEADER_KEYS = [
  'content-length',
  'content-type',
  'expect',
  'transfer-encoding',
  'server',
  'accept',
  'accept-encoding',
];

/** Parse one header line as Headers::parse_header_line; mutates req.headers. */
function parseHeaderLine(req, lineBuf) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(lineBuf);
  } catch {
    throw new RequestParseError(
      'Invalid header. Reason: Header contains invalid characters. Key: invalid utf-8 sequence',
    );
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
    refuseConnection(sock);
    return;
  }
  connections.add(new Connection(sock, handle));
}

/** Over dbs-uhttp's connection limit: answer 503 and close. */
function refuseConnection(sock) {
  sock.end(SERVER_FULL);
  sock.on('error', () => {});
  setTimeout(() => sock.destroy(), 100).unref();
}

/** Parse a request line (`METHOD URI VERSION`, without its CRLF) into a new request. */
function parseRequestLine(line) {
  const sp1 = line.indexOf(0x20);
  const sp2 = sp1 < 0 ? -1 : line.indexOf(0x20, sp1 + 1);
  if (sp1 < 0 || sp2 < 0) throw new RequestParseError('Invalid request.');
  const method = line.subarray(0, sp1).toString('latin1');
  const uriBytes = line.subarray(sp1 + 1, sp2);
  const version = line.subarray(sp2 + 1).toString('latin1');
  if (!Object.hasOwn(METHOD_DEBUG, method))
    throw new RequestParseError('Invalid HTTP Method: Unsupported HTTP method.');
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
  return { method, uri, version, contentLength: 0, chunked: false, expect: false, body: null };
}

/**
 * One API connection: dbs-uhttp's request parser (state line -> headers -> body -> ready,
 * or failed) over the bytes received, and the answers written back in order.
 */
class Connection {
  /** Listen to sock; a read-side hang-up closes the connection at once, dropping queued answers. */
  constructor(sock, handle) {
    this.sock = sock;
    this.handle = handle;
    this.buf = Buffer.alloc(0);
    this.state = 'line';
    this.req = null;
    this.dead = false;
    sock.on('error', () => this.drop());
    sock.on('close', () => this.drop());
    sock.on('end', () => {
      this.drop();
      sock.destroy();
    });
    sock.on('data', (chunk) => this.onData(chunk));
  }

  /** Forget the connection: nothing more is written to it. */
  drop() {
    this.dead = true;
    connections.delete(this);
  }

  /** Write bytes unless the connection is gone. */
  send(bytes) {
    if (!this.dead && !this.sock.destroyed) this.sock.write(bytes);
  }

  /** Take in received bytes and parse what they complete; a parse error fails the connection. */
  onData(chunk) {
    if (this.state === 'failed') return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.parse();
    } catch (e) {
      if (!(e instanceof RequestParseError)) throw e;
      this.failParse(e.message);
    }
  }

  /** Queue the 400 of a parse error, then close (DEVIATION: dbs-uhttp keeps the connection with a confused parser). */
  failParse(msg) {
    this.state = 'failed';
    enqueue(async () => {
      if (knob.slowMs) await sleep(knob.slowMs);
      this.send(parseErrorResponse(msg));
      if (!this.dead) this.sock.end();
    });
  }

  /** Parse as far as the buffer goes, queueing each complete request; throws RequestParseError. */
  parse() {
    while (this.state !== 'failed' && this.step()) {
      if (this.state === 'ready') this.dispatch();
    }
  }

  /** One parser step in the current state; false when it needs more bytes. */
  step() {
    if (this.state === 'line') return this.readRequestLine();
    if (this.state === 'headers') return this.readHeaderLine();
    if (this.state === 'body') return this.readBody();
    return false;
  }

  /** The next CRLF-terminated line, or null while incomplete; it must fit, CRLF included, in 1 KiB. */
  takeLine() {
    const i = this.buf.indexOf('\r\n');
    if (i < 0) {
      if (this.buf.length >= UHTTP_BUFFER) throw this.tooLong();
      return null;
    }
    if (i + 2 > UHTTP_BUFFER) throw this.tooLong();
    const line = this.buf.subarray(0, i);
    this.buf = this.buf.subarray(i + 2);
    return line;
  }

  /** dbs-uhttp's error for a request or header line longer than its buffer. */
  tooLong() {
    return new RequestParseError(
      this.state === 'line'
        ? 'Invalid request.'
        : `Invalid header. Reason: Invalid content length. Header: ${this.buf.subarray(0, UHTTP_BUFFER).toString('utf8')}`,
    );
  }

  /** State line: read the request line and start a request. */
  readRequestLine() {
    const line = this.takeLine();
    if (line === null) return false;
    this.req = parseRequestLine(line);
    this.state = 'headers';
    return true;
  }

  /** State headers: read one header line, or the empty line that ends them. */
  readHeaderLine() {
    const line = this.takeLine();
    if (line === null) return false;
    if (line.length === 0) this.endHeaders();
    else parseHeaderLine(this.req, line);
    return true;
  }

  /** After the headers: ready without a body; else check its size, answer Expect: 100-continue, await it. */
  endHeaders() {
    const req = this.req;
    if (req.contentLength === 0) {
      this.state = 'ready';
      return;
    }
    if (req.contentLength > UHTTP_MAX_PAYLOAD) {
      throw new RequestParseError(
        `Request payload with size ${req.contentLength} is larger than the limit of ` +
          `${UHTTP_MAX_PAYLOAD} allowed by server.`,
      );
    }
    if (req.expect) {
      this.send(serializeResponse({ status: 100, server: 'Firecracker API', body: null, version: req.version }));
    }
    this.state = 'body';
  }

  /** State body: take Content-Length bytes once they are all here. */
  readBody() {
    if (this.buf.length < this.req.contentLength) return false;
    this.req.body = Buffer.from(this.buf.subarray(0, this.req.contentLength));
    this.buf = this.buf.subarray(this.req.contentLength);
    this.state = 'ready';
    return true;
  }

  /** Queue the complete request for an answer and start parsing the next one. */
  dispatch() {
    const req = this.req;
    this.req = null;
    this.state = 'line';
    enqueue(() => this.answer(req));
  }

  /** Answer req (after NYDUSD_STANDIN_SLOW_MS); a response's `after` runs once it is flushed. */
  async answer(req) {
    if (knob.slowMs) await sleep(knob.slowMs);
    const res = this.handle(req);
    this.send(serializeResponse(res));
    if (res.after) {
      if (!this.dead && !this.sock.destroyed) this.sock.write('', () => setImmediate(res.after));
      else setImmediate(res.after);
    }
  }
}

module.exports = { METHOD_DEBUG, onConnection };

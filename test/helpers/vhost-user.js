'use strict';
/**
 * Minimal vhost-user FRONT-END (the VMM side) for tests.
 *
 * Speaks just enough of the vhost-user protocol
 * (https://qemu-project.gitlab.io/qemu/interop/vhost-user.html) to prove that a
 * back-end (virtiofsd, nydusd) is really serving its socket:
 *
 *   header = u32 request | u32 flags | u32 size   (all little-endian)
 *   flags  = 0x1 (protocol version 1) on requests; replies also set 0x4 (REPLY).
 *
 * Verified by hand against /usr/lib/qemu/virtiofsd (QEMU 7.2.22, GET_FEATURES
 * = 0x175000000) and Rust virtiofsd 1.13.2 (0x174000000); both set bit 32
 * (VIRTIO_F_VERSION_1) and bit 30 (VHOST_USER_F_PROTOCOL_FEATURES).
 *
 * Both daemons serve exactly one front-end and exit (code 0) once it
 * disconnects, so `close()` ends the daemon's life too.
 */
const net = require('node:net');

const VHOST_USER_GET_FEATURES = 1;
const VHOST_USER_SET_OWNER = 3;
const VHOST_USER_GET_PROTOCOL_FEATURES = 15;

const FLAG_VERSION = 0x1;
const FLAG_VERSION_MASK = 0x3;
const FLAG_REPLY = 0x4;
const HEADER_SIZE = 12;
/** Replies larger than this are treated as protocol garbage. */
const MAX_PAYLOAD = 4096;

const VIRTIO_F_VERSION_1 = 1n << 32n;
const VHOST_USER_F_PROTOCOL_FEATURES = 1n << 30n;

/**
 * Connect to a vhost-user back-end listening on `socketPath`.
 *
 * @param {string} socketPath unix socket path of the back-end.
 * @param {{ timeoutMs?: number }} [opts] timeoutMs: connect and per-reply deadline (default 5000).
 * @returns {Promise<{
 *   getFeatures(): Promise<bigint>,
 *   getProtocolFeatures(): Promise<bigint>,
 *   setOwner(): Promise<void>,
 *   close(): void,
 *   closed: Promise<void>,
 * }>}
 */
function connectVhostUser(socketPath, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let connected = false;
    const connectTimer = setTimeout(() => {
      sock.destroy(new Error(`vhost-user: connect to ${socketPath} timed out after ${timeoutMs} ms`));
    }, timeoutMs);

    /** Bytes received and not yet consumed (replies are tiny; no O(n^2) concern). */
    let inbuf = Buffer.alloc(0);
    /** @type {{ request: number, resolve: (b: Buffer) => void, reject: (e: Error) => void, timer: NodeJS.Timeout } | null} */
    let pending = null;
    /** Serialises requests: vhost-user is strictly request/reply on one socket. */
    let chain = Promise.resolve();
    let closeError = null;
    let resolveClosed;
    const closed = new Promise((r) => {
      resolveClosed = r;
    });

    function failPending(err) {
      if (pending) {
        const p = pending;
        pending = null;
        clearTimeout(p.timer);
        p.reject(err);
      }
    }

    function tryParse() {
      if (!pending || inbuf.length < HEADER_SIZE) return;
      const request = inbuf.readUInt32LE(0);
      const flags = inbuf.readUInt32LE(4);
      const size = inbuf.readUInt32LE(8);
      if (request !== pending.request) {
        failPending(new Error(`vhost-user: reply for request ${request}, expected ${pending.request}`));
        sock.destroy();
        return;
      }
      if ((flags & FLAG_VERSION_MASK) !== FLAG_VERSION || (flags & FLAG_REPLY) === 0) {
        failPending(new Error(`vhost-user: bad reply flags 0x${flags.toString(16)} (want version 1 + REPLY 0x4)`));
        sock.destroy();
        return;
      }
      if (size > MAX_PAYLOAD) {
        failPending(new Error(`vhost-user: reply payload size ${size} too large`));
        sock.destroy();
        return;
      }
      if (inbuf.length < HEADER_SIZE + size) return;
      const payload = Buffer.from(inbuf.subarray(HEADER_SIZE, HEADER_SIZE + size));
      inbuf = inbuf.subarray(HEADER_SIZE + size);
      const p = pending;
      pending = null;
      clearTimeout(p.timer);
      p.resolve(payload);
    }

    sock.on('data', (chunk) => {
      inbuf = inbuf.length === 0 ? chunk : Buffer.concat([inbuf, chunk]);
      if (!pending) {
        // Unsolicited bytes: the back-end must not send anything unasked here.
        closeError = new Error(`vhost-user: ${chunk.length} unsolicited bytes from back-end`);
        sock.destroy();
        return;
      }
      tryParse();
    });
    sock.on('error', (err) => {
      closeError = closeError ?? err;
      if (!connected) {
        clearTimeout(connectTimer);
        reject(err);
      }
    });
    sock.on('close', () => {
      closeError = closeError ?? new Error('vhost-user: connection closed');
      failPending(closeError);
      resolveClosed();
    });

    /**
     * Send one message; if `replySize` is not null, wait for a reply whose
     * payload is exactly `replySize` bytes.
     */
    function send(request, payload, replySize) {
      const run = () =>
        new Promise((res, rej) => {
          if (sock.destroyed) {
            rej(closeError ?? new Error('vhost-user: connection closed'));
            return;
          }
          const body = payload ?? Buffer.alloc(0);
          const hdr = Buffer.alloc(HEADER_SIZE);
          hdr.writeUInt32LE(request, 0);
          hdr.writeUInt32LE(FLAG_VERSION, 4);
          hdr.writeUInt32LE(body.length, 8);
          if (replySize === null) {
            sock.write(Buffer.concat([hdr, body]), (err) => (err ? rej(err) : res(Buffer.alloc(0))));
            return;
          }
          const timer = setTimeout(() => {
            // The stream position is unknown now: fail and drop the connection.
            failPending(new Error(`vhost-user: no reply to request ${request} within ${timeoutMs} ms`));
            sock.destroy();
          }, timeoutMs);
          pending = {
            request,
            resolve: (buf) => {
              if (buf.length !== replySize) {
                rej(
                  new Error(
                    `vhost-user: reply to request ${request} has ${buf.length} payload bytes, expected ${replySize}`,
                  ),
                );
              } else {
                res(buf);
              }
            },
            reject: rej,
            timer,
          };
          sock.write(Buffer.concat([hdr, body]));
          tryParse();
        });
      const p = chain.then(run);
      chain = p.catch(() => {});
      return p;
    }

    sock.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      resolve({
        /** VHOST_USER_GET_FEATURES: the back-end's virtio + vhost-user feature bits. */
        async getFeatures() {
          return (await send(VHOST_USER_GET_FEATURES, null, 8)).readBigUInt64LE(0);
        },
        /** VHOST_USER_GET_PROTOCOL_FEATURES (valid when bit 30 is in getFeatures()). */
        async getProtocolFeatures() {
          return (await send(VHOST_USER_GET_PROTOCOL_FEATURES, null, 8)).readBigUInt64LE(0);
        },
        /** VHOST_USER_SET_OWNER: no reply unless REPLY_ACK was negotiated (it is not here). */
        async setOwner() {
          await send(VHOST_USER_SET_OWNER, null, null);
        },
        /** Drop the connection (the daemon then exits on its own). */
        close() {
          sock.destroy();
        },
        /** Resolves once the connection is closed, by either side. */
        closed,
      });
    });
  });
}

module.exports = {
  connectVhostUser,
  VHOST_USER_GET_FEATURES,
  VHOST_USER_SET_OWNER,
  VHOST_USER_GET_PROTOCOL_FEATURES,
  VIRTIO_F_VERSION_1,
  VHOST_USER_F_PROTOCOL_FEATURES,
};

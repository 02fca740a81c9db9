'use strict';
/**
 * The two listening sockets: the vhost-user socket (--sock), bound as vhost's Listener::new
 * binds it and held but never spoken to, and the API socket (--apisock), with nydusd's
 * errors when either cannot be bound. Follows src/bin/nydusd/virtiofs.rs and api_server_glue.rs.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { ioDebug } = require('./rust');
const { info, error, mainError } = require('./log');
const { onConnection } = require('./http');
const { serveRequest } = require('./api');

const SUN_PATH_MAX = 107; // Rust: bytes.len() >= sizeof(sun_path) (108) is an error

/** Whether p does not fit in sockaddr_un.sun_path with its NUL. */
function pathTooLong(p) {
  return Buffer.byteLength(p) > SUN_PATH_MAX;
}
/** Bind a listening unix socket; resolves with the server, rejects with the errno error. */
function listenUnix(p, onConn) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer({ allowHalfOpen: true }, onConn);
    srv.once('error', (e) => {
      // libuv turns bind()'s ENOENT (missing directory) into EACCES; nydusd reports the errno.
      if (e.code === 'EACCES') {
        try {
          fs.statSync(path.dirname(p));
        } catch (d) {
          if (d.code === 'ENOENT' || d.code === 'ENOTDIR') e = Object.assign(new Error(d.code), { code: d.code });
        }
      }
      reject(e);
    });
    srv.listen({ path: p, backlog: 511 }, () => {
      srv.removeListener('error', reject);
      srv.on('error', (e) => error(`listener error: ${e.message}`));
      resolve(srv);
    });
  });
}

let apiSockIno = null;
const vhostPeers = new Set();

/** vhost Listener::new(sock, unlink = true) + VhostUserDaemon::start */
async function bindVhostSocket(sock) {
  try {
    fs.unlinkSync(sock);
  } catch {
    /* remove_file errors are ignored */
  }
  if (sock === '') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  if (pathTooLong(sock)) throw Object.assign(new Error('SUN_LEN'), { sunLen: true });
  // The listening server lives as long as the process: nothing needs a reference to it.
  await listenUnix(sock, (peer) => {
    // The stand-in cannot speak vhost-user: hold the connection open, as the real daemon
    // would while a front-end negotiates, but never answer.
    vhostPeers.add(peer);
    info('stand-in: vhost-user front-end connected (not served: the stand-in does not speak vhost-user)');
    peer.on('error', () => {});
    peer.on('close', () => vhostPeers.delete(peer));
    peer.resume();
  });
}

/** Bind the API socket and serve it, as nydusd's ApiServer does; exits with main()'s error when it cannot. */
async function startApi(apisock) {
  try {
    fs.unlinkSync(apisock);
  } catch {
    /* ignored, as fs::remove_file(path) */
  }
  if (pathTooLong(apisock)) {
    mainError('Error { kind: InvalidInput, message: "path must be shorter than SUN_LEN" }');
  }
  try {
    await listenUnix(apisock, (conn) => onConnection(conn, serveRequest));
  } catch (e) {
    mainError(ioDebug(e));
  }
  try {
    apiSockIno = fs.statSync(apisock).ino;
  } catch {
    /* raced away */
  }
  info(`HTTP API server running at ${apisock}`);
  info('http server started');
}

/** Remove the API socket at exit, unless someone else's socket now has the path. */
function removeApiSocket(apisock) {
  if (!apisock || apiSockIno === null) return;
  try {
    if (fs.statSync(apisock).ino === apiSockIno) fs.unlinkSync(apisock);
  } catch {
    /* already gone */
  }
}

module.exports = { bindVhostSocket, startApi, removeApiSocket };

'use strict';
/**
 * Request targets as nydus's API server reads them: micro-http's absolute path, the http
 * crate's URI parse, and url's form_urlencoded query pairs.
 */

/** micro-http Uri::get_abs_path */
function absPath(uri) {
  if (uri.startsWith('http://')) {
    const rest = uri.slice(7);
    if (rest === '') return '';
    const i = rest.indexOf('/');
    return i < 0 ? '' : rest.slice(i);
  }
  return uri.startsWith('/') ? uri : '';
}
/** http 0.2 `parse::<Uri>()` of an origin-form target: returns { path, query } or an error text. */
function httpCrateParse(abs) {
  if (abs === '') return { err: 'empty string' };
  const okPath = (b) =>
    b === 0x21 ||
    (b >= 0x24 && b <= 0x3b) ||
    b === 0x3d ||
    (b >= 0x40 && b <= 0x5f) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x7c ||
    b === 0x7e ||
    b === 0x22 ||
    b === 0x7b ||
    b === 0x7d;
  const okQuery = (b) => b === 0x21 || (b >= 0x24 && b <= 0x3b) || b === 0x3d || (b >= 0x3f && b <= 0x7e);
  const bytes = Buffer.from(abs, 'utf8');
  let q = -1;
  let end = bytes.length;
  let i = 0;
  for (; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x3f) {
      q = i;
      break;
    }
    if (b === 0x23) {
      end = i;
      break;
    }
    if (!okPath(b)) return { err: 'invalid uri character' };
  }
  if (q >= 0) {
    for (i = q + 1; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x23) {
        end = i;
        break;
      }
      if (!okQuery(b)) return { err: 'invalid uri character' };
    }
  }
  const pathEnd = q >= 0 ? q : end;
  return {
    path: bytes.subarray(0, pathEnd).toString('latin1'),
    query: q >= 0 ? bytes.subarray(q + 1, end).toString('latin1') : null,
  };
}
/** url::form_urlencoded::parse + into_owned (lossy UTF-8). */
function formPairs(query) {
  const out = [];
  if (query === null) return out;
  const dec = (s) => {
    const bytes = [];
    const raw = Buffer.from(s.replace(/\+/g, ' '), 'latin1');
    for (let i = 0; i < raw.length; i++) {
      const hex = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
      if (raw[i] === 0x25 && i + 2 < raw.length && hex(raw[i + 1]) && hex(raw[i + 2])) {
        bytes.push(parseInt(String.fromCharCode(raw[i + 1], raw[i + 2]), 16));
        i += 2;
      } else {
        bytes.push(raw[i]);
      }
    }
    return new TextDecoder('utf-8').decode(Buffer.from(bytes));
  };
  for (const piece of query.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const k = eq < 0 ? piece : piece.slice(0, eq);
    const v = eq < 0 ? '' : piece.slice(eq + 1);
    out.push([dec(k), dec(v)]);
  }
  return out;
}
/** The decoded value of the first key= pair in query, or null. */
function queryPart(query, key) {
  for (const [k, v] of formPairs(query)) if (k === key) return v;
  return null;
}

module.exports = { absPath, httpCrateParse, queryPart };

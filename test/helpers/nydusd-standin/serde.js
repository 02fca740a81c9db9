'use strict';
/**
 * Request bodies as serde_json reads them into nydus's structs, with serde's error texts
 * (positions approximate; duplicate keys not detected).
 */
const { dbg } = require('./rust');

/** HttpError::ParseBody's Debug text for a serde error msg at byte pos (default: the end) of body. */
function serdeErr(msg, body, pos) {
  const text = body.toString('utf8');
  const upto = text.slice(0, pos === undefined ? text.length : pos);
  const line = upto.split('\n').length;
  const column = upto.length - (upto.lastIndexOf('\n') + 1);
  return `ParseBody(Error(${dbg(msg)}, line: ${line}, column: ${column}))`;
}
/** How serde names the JSON value v in `invalid type: ...` errors. */
function serdeDesc(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'sequence';
  if (typeof v === 'object') return 'map';
  if (typeof v === 'string') return `string ${dbg(v)}`;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (Number.isInteger(v)) return `integer \`${v}\``;
  return `floating point \`${v}\``;
}
/** serde_json::from_slice::<T>: returns { value } or { err } (HttpError Debug text). */
function parseJsonBody(body) {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { err: serdeErr('invalid unicode code point', body) };
  }
  const text = body.toString('utf8');
  if (text.trim() === '') return { err: serdeErr('EOF while parsing a value', body) };
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const m = /position (\d+)/.exec(e.message);
    const pos = m ? Number(m[1]) + 1 : text.length;
    let msg = 'expected value';
    if (/Unexpected end of JSON input/.test(e.message)) msg = 'EOF while parsing a value';
    else if (/non-whitespace character after JSON/.test(e.message)) msg = 'trailing characters';
    else if (/property name/.test(e.message)) msg = 'key must be a string';
    else if (/after property value|after array element/.test(e.message)) msg = 'expected `,` or `}`';
    return { err: serdeErr(msg, body, pos) };
  }
}
/**
 * Deserialize a struct described by fields [{name, type: 'string'|'string?'|'strings?', required}]
 * the way serde derive does (maps by key, sequences by position): { value } or { err }.
 */
function deserializeStruct(body, structName, fields) {
  const r = parseJsonBody(body);
  if (r.err) return r;
  const v = r.value;
  const out = {};
  let err;
  if (Array.isArray(v)) err = structFromSeq(v, structName, fields, out);
  else if (v !== null && typeof v === 'object') err = structFromMap(v, fields, out);
  else err = `invalid type: ${serdeDesc(v)}, expected struct ${structName}`;
  if (err) return { err: serdeErr(err, body) };
  for (const f of fields) {
    if (!(f.name in out) && f.def !== undefined) out[f.name] = f.def;
  }
  return { value: out };
}

/** Fill out from a JSON array, one field per element in order: serde's error text, or null. */
function structFromSeq(v, structName, fields, out) {
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (i >= v.length) {
      if (f.required) return `invalid length ${v.length}, expected struct ${structName} with ${fields.length} elements`;
      continue;
    }
    const e = fieldTypeError(f, v[i]);
    if (e) return e;
    out[f.name] = v[i];
  }
  return v.length > fields.length ? 'trailing characters' : null;
}

/** Fill out from a JSON object by key, unknown keys ignored: serde's error text, or null. */
function structFromMap(v, fields, out) {
  for (const [k, val] of Object.entries(v)) {
    const f = fields.find((x) => x.name === k);
    if (!f) continue; // unknown fields are ignored
    const e = fieldTypeError(f, val);
    if (e) return e;
    out[k] = val;
  }
  const missing = fields.find((f) => f.required && !(f.name in out));
  return missing ? `missing field \`${missing.name}\`` : null;
}

/** serde's error text when val does not fit field f's type, or null. */
function fieldTypeError(f, val) {
  if (f.type === 'string') {
    if (typeof val !== 'string') return `invalid type: ${serdeDesc(val)}, expected a string`;
  } else if (f.type === 'strings?') {
    if (val === null) return null;
    if (!Array.isArray(val)) return `invalid type: ${serdeDesc(val)}, expected a sequence`;
    for (const x of val) if (typeof x !== 'string') return `invalid type: ${serdeDesc(x)}, expected a string`;
  }
  return null;
}

module.exports = { deserializeStruct };

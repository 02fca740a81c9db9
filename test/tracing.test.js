'use strict';
// start and stop are spans through @opentelemetry/api with Kata's tags. A minimal tracer
// provider (the API's interface, no SDK) records what the library hands it.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { trace } = require('@opentelemetry/api');
const pino = require('pino');
const { virtiofsdPath } = require('./helpers/daemons.js');
const { tempDir } = require('./helpers/util.js');

const spans = [];
class RecordedSpan {
  constructor(name, attributes) {
    Object.assign(this, { name, attributes: { ...attributes }, status: null, exceptions: [], ended: false });
  }
  spanContext() {
    return { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 };
  }
  setAttribute(k, v) {
    this.attributes[k] = v;
    return this;
  }
  setAttributes(a) {
    Object.assign(this.attributes, a);
    return this;
  }
  addEvent() {
    return this;
  }
  addLink() {
    return this;
  }
  addLinks() {
    return this;
  }
  setStatus(s) {
    this.status = s;
    return this;
  }
  updateName(n) {
    this.name = n;
    return this;
  }
  end() {
    this.ended = true;
  }
  isRecording() {
    return true;
  }
  recordException(e) {
    this.exceptions.push(e);
  }
}
const tracer = {
  startSpan(name, options = {}) {
    const span = new RecordedSpan(name, options.attributes);
    spans.push(span);
    return span;
  },
  startActiveSpan(name, ...args) {
    const fn = args.pop();
    return fn(this.startSpan(name, args[0]));
  },
};
trace.setGlobalTracerProvider({ getTracer: () => tracer });

const { Virtiofsd } = require('../dist/index.js');
const KATA_TAGS = { source: 'runtime', package: 'virtcontainers', subsystem: 'virtiofsd' };

test("start and stop are spans with Kata's tags; a failed start records its error", async (t) => {
  const dir = tempDir(t, 'vfsd-trace-');
  const socketPath = path.join(dir, 'vfs.sock');
  const d = new Virtiofsd({
    path: virtiofsdPath('rust'),
    socketPath,
    sourcePath: dir,
    logger: pino({ level: 'silent' }),
  });
  await d.start();
  await d.stop();

  assert.deepEqual(
    spans.map((s) => [s.name, s.ended]),
    [
      ['start', true],
      ['stop', true],
    ],
  );
  for (const s of spans)
    assert.deepEqual({ ...s.attributes, ...KATA_TAGS }, s.attributes, `${s.name} carries Kata's tags`);
  assert.equal(spans[0].attributes.socketPath, socketPath);
  assert.equal(spans[0].status, null);

  const bad = new Virtiofsd({
    path: virtiofsdPath('rust'),
    socketPath,
    sourcePath: path.join(dir, 'missing'),
    logger: pino({ level: 'silent' }),
  });
  await assert.rejects(bad.start(), { code: 'ERR_INVALID_OPTION' });
  const failed = spans[2];
  assert.equal(failed.name, 'start');
  assert.equal(failed.ended, true);
  assert.equal(failed.status.code, 2, 'SpanStatusCode.ERROR');
  assert.equal(failed.exceptions[0].code, 'ERR_INVALID_OPTION');
});

'use strict';
// qemuArgs(): the QEMU options an app passes straight to spawn (issue 17, item 6). That QEMU
// really boots with them and reaches the daemon is test/guest.test.js's job; here, the argv
// and every refusal.
const test = require('node:test');
const assert = require('node:assert/strict');
const { InvalidOptionError, Nydusd, Virtiofsd, qemuArgs, MAX_TAG_BYTES } = require('../dist/index.js');

test('qemuArgs: chardev, vhost-user-fs device, memfd backend shared with the daemon, its NUMA node and -m', () => {
  assert.deepEqual(qemuArgs({ socketPath: '/run/vm/fs.sock', tag: 'home', memory: '2G' }), [
    '-chardev',
    'socket,id=vfs0,path=/run/vm/fs.sock',
    '-device',
    'vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=home,id=vfs0',
    '-object',
    'memory-backend-memfd,id=mem,size=2G,share=on',
    '-numa',
    'node,memdev=mem',
    '-m',
    '2G',
  ]);
});

test("qemuArgs: a comma in any value is doubled, QEMU's escape, so it cannot start another key", () => {
  const args = qemuArgs({ socketPath: '/tmp/a,share=off/s.sock', tag: 'x,id=evil', memory: '1G' });
  assert.equal(args[1], 'socket,id=vfs0,path=/tmp/a,,share=off/s.sock');
  assert.equal(args[3], 'vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=x,,id=evil,id=vfs0');
});

test('qemuArgs: memoryBackend false gives the device part only; ids and queue size are the caller’s', () => {
  assert.deepEqual(qemuArgs({ socketPath: '/s2', tag: 'second', memoryBackend: false, id: 'vfs1', queueSize: 256 }), [
    '-chardev',
    'socket,id=vfs1,path=/s2',
    '-device',
    'vhost-user-fs-pci,queue-size=256,chardev=vfs1,tag=second,id=vfs1',
  ]);
  const own = qemuArgs({ socketPath: '/s', tag: 't', memory: '512m', memoryId: 'ram0' });
  assert.deepEqual(own.slice(4), [
    '-object',
    'memory-backend-memfd,id=ram0,size=512M,share=on',
    '-numa',
    'node,memdev=ram0',
    '-m',
    '512M',
  ]);
});

test('qemuArgs: memory in bytes is written in the largest whole unit, the same for -m and size=', () => {
  const sizes = [2 ** 30, 1536 * 2 ** 20, 3 * 2 ** 40].map((memory) => {
    const args = qemuArgs({ socketPath: '/s', tag: 't', memory });
    assert.equal(args[5], `memory-backend-memfd,id=mem,size=${args[9]},share=on`);
    return args[9];
  });
  assert.deepEqual(sizes, ['1G', '1536M', '3T']);
});

test(`qemuArgs: a tag of ${MAX_TAG_BYTES} bytes (UTF-8) passes, one more byte is refused`, () => {
  const tag = 'é'.repeat(MAX_TAG_BYTES / 2); // 2 bytes each
  assert.match(qemuArgs({ socketPath: '/s', tag, memory: '1G' })[3], new RegExp(`tag=${tag},`));
  assert.throws(
    () => qemuArgs({ socketPath: '/s', tag: `${tag}x`, memory: '1G' }),
    (err) => err instanceof InvalidOptionError && err.option === 'tag' && /37 bytes.*at most 36/.test(err.message),
  );
});

const refusals = [
  [{ tag: '', memory: '1G' }, 'tag', /non-empty string/],
  [{ memory: '1G' }, 'tag', /non-empty string, got undefined/],
  [{ tag: 'a\0b', memory: '1G' }, 'tag', /NUL byte/],
  [{ tag: 't', memory: '1G', socketPath: '/tmp/a\0b' }, 'socketPath', /NUL byte/],
  [{ tag: 't', memory: '1G', socketPath: `/tmp/${'x'.repeat(110)}` }, 'socketPath', /at most 107/],
  [{ tag: 't' }, 'memory', /required with the memory backend.*memoryBackend: false/],
  [{ tag: 't', memory: '2048' }, 'memory', /no unit.*MiB in -m but as bytes/],
  [{ tag: 't', memory: '2 G' }, 'memory', /not a QEMU size/],
  [{ tag: 't', memory: '1.5G' }, 'memory', /not a QEMU size.*'512M'/],
  [{ tag: 't', memory: '0G' }, 'memory', /not a QEMU size/],
  [{ tag: 't', memory: 1000 }, 'memory', /not a whole, positive number of MiB/],
  [{ tag: 't', memory: '1G\0' }, 'memory', /not a QEMU size/],
  [{ tag: 't', memoryBackend: false, memory: '1G' }, 'memory', /memoryBackend: false leaves out/],
  [{ tag: 't', memoryBackend: false, memoryId: 'm' }, 'memoryId', /memoryBackend: false leaves out/],
  [{ tag: 't', memoryBackend: 'no' }, 'memoryBackend', /not a boolean/],
  [{ tag: 't', memory: '1G', id: '0fs' }, 'id', /not a QEMU id/],
  [{ tag: 't', memory: '1G', id: 'a,b' }, 'id', /not a QEMU id/],
  [{ tag: 't', memory: '1G', memoryId: '' }, 'memoryId', /not a QEMU id/],
  [{ tag: 't', memory: '1G', queueSize: 1000 }, 'queueSize', /power of two from 1 to 1024/],
  [{ tag: 't', memory: '1G', queueSize: 2048 }, 'queueSize', /power of two from 1 to 1024/],
  [{ tag: 't', memory: '1G', queueSize: 0 }, 'queueSize', /power of two/],
  [{ tag: 't', memorySize: '1G' }, 'memorySize', /not an option of qemuArgs\(\); did you mean memory\?/],
  [{ tag: 't', memory: '1G', queue_size: 8 }, 'queue_size', /did you mean queueSize\?/],
];

for (const [options, option, message] of refusals) {
  test(`qemuArgs refuses ${JSON.stringify(options)
    .replace(/\\u0000/g, '\\0')
    .slice(0, 70)}: ${option}`, () => {
    assert.throws(
      () => qemuArgs({ socketPath: '/run/vm/fs.sock', ...options }),
      (err) =>
        err instanceof InvalidOptionError &&
        err.code === 'ERR_INVALID_OPTION' &&
        err.option === option &&
        message.test(err.message),
    );
  });
}

test('qemuArgs: not an object is a typed error that shows the call', () => {
  for (const bad of [undefined, null, 'x']) {
    assert.throws(
      () => qemuArgs(bad),
      (err) => err instanceof InvalidOptionError && /call qemuArgs\(\{ \.\.\. \}\)/.test(err.message),
    );
  }
});

test("virtiofsd.qemuArgs() uses the daemon's own socket, made absolute; a socketPath of the caller's is refused", () => {
  const daemon = new Virtiofsd({ socketPath: 'vm,1.sock', sourcePath: '/tmp' });
  const args = daemon.qemuArgs({ tag: 'home', memory: '1G' });
  assert.equal(args[1], `socket,id=vfs0,path=${`${process.cwd()}/vm,1.sock`.replace(/,/g, ',,')}`);
  assert.equal(args.length, 10);
  assert.throws(
    () => daemon.qemuArgs({ tag: 'home', memory: '1G', socketPath: '/elsewhere' }),
    (err) => err.option === 'socketPath' && /virtiofsd\.qemuArgs\(\) uses the daemon's own socket/.test(err.message),
  );
});

test("nydusd.qemuArgs() uses its vhost-user socket (sockPath), not the API's", () => {
  const daemon = new Nydusd({ sockPath: '/run/n/vhost.sock', apiSockPath: '/run/n/api.sock', sourcePath: '/tmp' });
  assert.deepEqual(daemon.qemuArgs({ tag: 'rafs', memoryBackend: false }), [
    '-chardev',
    'socket,id=vfs0,path=/run/n/vhost.sock',
    '-device',
    'vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=rafs,id=vfs0',
  ]);
});

test('a daemon whose options are invalid throws their error from qemuArgs(), as start() rejects with it', async () => {
  const daemon = new Virtiofsd({ socketPath: '', sourcePath: '/tmp' });
  const started = await daemon.start().catch((err) => err);
  assert.equal(started.option, 'socketPath');
  assert.throws(() => daemon.qemuArgs({ tag: 't', memory: '1G' }), started);
});

'use strict';
// The CLI's detached daemons as an operator uses them: run --detach, status, stop, with a real
// virtiofsd and real processes.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { connectVhostUser } = require('./helpers/vhost-user.js');
const h = require('./helpers/daemons.js');
const { cli, detached } = require('./helpers/cli.js');
const { running } = require('./helpers/lifetime.js');
const { tempDir } = require('./helpers/util.js');

/** A detached daemon's paths in a fresh 0700 temp dir (a trusted state file directory: ours, in sticky /tmp). */
const setup = (t) => detached(t, tempDir(t, 'vcl-'));

test('run --detach exits 0 once ready and leaves a serving daemon; status verifies it; stop stops it and cleans up', async (t) => {
  const s = setup(t);
  const r = await s.run();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /-chardev socket,id=vfs0,path=/);
  const hd = JSON.parse(fs.readFileSync(s.state, 'utf8'));
  assert.equal(hd.lifetime, 'survive');
  assert.equal(fs.statSync(s.state).mode & 0o777, 0o600, 'the state file is private');
  assert.ok(running(hd), 'the daemon outlives the command');
  const fe = await connectVhostUser(s.socket);
  t.after(() => fe.close());
  assert.ok((await fe.getFeatures()) > 0n, 'it serves');

  const st = await cli(['status', '--state', s.state]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(
    st.stdout,
    new RegExp(
      `^running: virtiofsd pid ${hd.pid} \\(verified: sealed handle, our uid, its output pipe and sockets\\), no manager attached`,
    ),
  );

  const again = await s.run();
  assert.equal(again.code, 1);
  assert.match(again.stderr, /still running/);
  assert.ok(running(hd), 'a second run --detach on the same state leaves the first alone');

  const stop = await cli(['stop', '--state', s.state]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stderr, /Client connected/, 'its output since run --detach is delivered by stop');
  assert.deepEqual(h.liveGroupMembers(hd.pgid), []);
  assert.equal(fs.existsSync(s.socket), false, 'socket removed');
  assert.equal(fs.existsSync(s.state), false, 'state file removed');
});

test('status and stop of a daemon that died: exit 3 "not running", nothing signalled', async (t) => {
  const s = setup(t);
  assert.equal((await s.run()).code, 0);
  const hd = JSON.parse(fs.readFileSync(s.state, 'utf8'));
  process.kill(hd.pid, 'SIGKILL');
  await h.waitFor(() => !running(hd), { what: 'the daemon to die' });
  const st = await cli(['status', '--state', s.state]);
  assert.equal(st.code, 3, st.stderr);
  assert.match(st.stdout, /^not running: virtiofsd \(pid \d+\) is gone/);
  const stop = await cli(['stop', '--state', s.state]);
  assert.equal(stop.code, 3, stop.stderr);
  assert.equal(fs.existsSync(s.state), false, 'the stale state file is removed');
  assert.equal(fs.existsSync(s.socket), false, 'the socket it left behind is removed');
});

test('usage: stop/status need --state; --state without --detach; a state file that is not a handle', async (t) => {
  const dir = tempDir(t, 'vcl-');
  for (const args of [
    ['stop'],
    ['status'],
    ['run', '--shared-dir', dir, '--socket', path.join(dir, 's'), '--state', path.join(dir, 'x')],
  ]) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /--state|--detach/);
  }
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '{"format": 2, "kind": "virtiofsd", "pid": "12"}');
  const r = await cli(['stop', '--state', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /handle: pid is "12", not a pid/);
});

'use strict';
/** The CLI (dist/cli/cli.js) run as an operator runs it, for the tests of its detached daemons. */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./daemons.js');
const { killGroups } = require('./lifetime.js');

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'cli.js');

/**
 * Run the CLI to its end: { code, signal, stdout, stderr, ms }. With `timeoutMs`, a CLI still
 * running then is SIGKILLed and the promise rejects with `what` and the time: a hang fails the
 * test by name, fast, instead of stalling it.
 */
function cli(args, { timeoutMs = 0, what = `virtiofs-daemon ${args.join(' ')}` } = {}) {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  return new Promise((resolve, reject) => {
    const timer =
      timeoutMs > 0 &&
      setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${what} did not finish within ${timeoutMs} ms (it hangs); stderr so far: ${stderr}`));
      }, timeoutMs);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/**
 * A detached virtiofsd's paths in `dir` - state.json, v.sock, `dir` shared - and `run(more)`,
 * which starts it with run --detach (the Rust dialect). Whatever a run left running is killed
 * after t (identity checked: never a recycled pid). Its handle is read right after the run:
 * after-hooks run in the order they were added, so `dir` (and the state file in it) may be gone
 * by the time this one runs.
 */
function detached(t, dir, { state = path.join(dir, 'state.json'), timeoutMs = 0 } = {}) {
  const socket = path.join(dir, 'v.sock');
  const started = [];
  t.after(() => killGroups(started));
  const remember = () => {
    try {
      // Only a regular file: reading a FIFO or /dev/zero planted there by a test would hang us.
      if (!fs.lstatSync(state).isFile() || fs.lstatSync(state).size > 65536) return;
      const handle = JSON.parse(fs.readFileSync(state, 'utf8'));
      if (Number.isSafeInteger(handle?.pid) && typeof handle.startTime === 'string') started.push(handle);
    } catch {
      // no state file, or not a handle (a test's own content)
    }
  };
  const run = async (more = []) => {
    const r = await cli(
      [
        'run',
        '--detach',
        '--state',
        state,
        '--shared-dir',
        dir,
        '--socket',
        socket,
        '--virtiofsd',
        h.virtiofsdPath('rust'),
        ...more,
      ],
      { timeoutMs },
    );
    remember();
    return r;
  };
  return { dir, state, socket, run };
}

module.exports = { CLI, cli, detached };

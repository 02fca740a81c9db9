'use strict';
/**
 * The daemon's state machine: the DaemonState that GET /daemon reports, the rust_fsm states
 * behind it and their transitions with nydusd's log lines, stop and exit, and DaemonInfo.
 * Follows service/src/daemon.rs.
 */
const { BUILD } = require('./env');
const { info, error } = require('./log');
const { backendCollection } = require('./fs-service');

const daemon = {
  state: 'INIT', // DaemonState as GET /daemon reports it
  fsm: 'Init', // rust_fsm state: Init | Ready | Running | Die
  id: null,
  supervisor: null,
  taken: false, // DAEMON_CONTROLLER.shutdown() took the daemon object out
  shuttingDown: false,
};
/** The state machine's log line of one transition. */
function fsmLog(from, to, input, output) {
  info(`State machine(pid=${process.pid}): from ${from} to ${to}, input [${input}], output [${output}]`);
}
/** DaemonStateMachineInput handling, as in run_state_machine_event_loop. Returns an error text or null. */
function fsmEvent(input) {
  const table = {
    Init: { Mount: ['Ready', 'None'], Takeover: ['Ready', 'Some(Restore)'], Stop: ['Die', 'Some(StopStateMachine)'] },
    Ready: {
      Start: ['Running', 'Some(StartService)'],
      Stop: ['Die', 'Some(Umount)'],
      Exit: ['Die', 'Some(StopStateMachine)'],
    },
    Running: { Stop: ['Ready', 'Some(TerminateService)'] },
    Die: {},
  };
  const t = table[daemon.fsm][input];
  if (!t) {
    error(`Wrong event input. Event=${input}, CurrentState=${daemon.fsm}`, '/src/daemon.rs:0');
    return input;
  }
  fsmLog(daemon.fsm, t[0], input, t[1]);
  daemon.fsm = t[0];
  if (t[1] === 'Some(TerminateService)') daemon.state = 'READY';
  if (t[1] === 'Some(Umount)' || t[1] === 'Some(StopStateMachine)') daemon.state = 'STOPPED';
  if (daemon.state === 'STOPPED') info('state_machine thread exits');
  return null;
}
/** NydusDaemon::trigger_stop */
function triggerStop() {
  if (daemon.state === 'STOPPED') return;
  if (daemon.state === 'RUNNING') fsmEvent('Stop');
  fsmEvent('Stop');
}
/** NydusDaemon::trigger_exit */
function triggerExit() {
  if (daemon.state === 'STOPPED') return;
  if (daemon.state === 'INIT') {
    fsmEvent('Stop');
    return;
  }
  if (daemon.state === 'RUNNING') fsmEvent('Stop');
  fsmEvent('Exit');
}

/** DaemonInfo as JSON: build, id, supervisor, state, and the backends when includeFs (v1). */
function daemonInfoJson(includeFs) {
  let backend = null;
  if (includeFs) {
    backend = {};
    for (const [k, v] of backendCollection) backend[k] = v;
  }
  return JSON.stringify({
    version: BUILD,
    id: daemon.id,
    supervisor: daemon.supervisor,
    state: daemon.state,
    backend_collection: backend,
  });
}

module.exports = { daemon, fsmEvent, triggerStop, triggerExit, daemonInfoJson };

'use strict';
/**
 * What the environment decides: the build the stand-in claims to be (NYDUSD_STANDIN_VERSION)
 * and the test knobs (NYDUSD_STANDIN_*), read once at start-up. The knobs are documented in
 * ../nydusd-standin.js.
 */

const env = process.env;

/** The BuildTimeInfo that `--version`, the start-up line and GET /daemon report. */
const BUILD = {
  package_ver: env.NYDUSD_STANDIN_VERSION || 'v2.2.3',
  git_commit: 'nydusd-standin',
  build_time: '2023-09-01T00:00:00.000000000Z',
  profile: 'release',
  rustc: 'rustc 1.68.2 (9eb3afe9e 2023-03-27)',
};

const knob = {
  record: env.NYDUSD_STANDIN_RECORD || '',
  initMs: Number(env.NYDUSD_STANDIN_INIT_MS || 0) || 0,
  neverRunning: env.NYDUSD_STANDIN_NEVER_RUNNING === '1',
  exitEarly:
    env.NYDUSD_STANDIN_EXIT_EARLY !== undefined && env.NYDUSD_STANDIN_EXIT_EARLY !== ''
      ? Number(env.NYDUSD_STANDIN_EXIT_EARLY)
      : null,
  ignoreSigterm: env.NYDUSD_STANDIN_IGNORE_SIGTERM === '1',
  slowMs: Number(env.NYDUSD_STANDIN_SLOW_MS || 0) || 0,
  stderrLines: Number(env.NYDUSD_STANDIN_STDERR_LINES || 0) || 0,
  fsMetrics: env.NYDUSD_STANDIN_FS_METRICS ? JSON.parse(env.NYDUSD_STANDIN_FS_METRICS) : {},
};

module.exports = { BUILD, knob };

'use strict';
/**
 * The real daemons for the integration tests, and what /proc says about the processes they
 * leave (or must not leave) behind.
 *
 * virtiofsdPath(dialect) finds a runnable virtiofsd of the asked dialect:
 *   1. $VIRTIOFSD_LEGACY / $VIRTIOFSD_RUST, when set (to test another build),
 *   2. the well-known paths /usr/lib/qemu/virtiofsd, /usr/libexec/virtiofsd and the project's
 *      .cache/virtiofsd-<dialect>/virtiofsd (where scripts/setup.sh unpacks the dialect that this
 *      Debian release does not ship, with scripts/get-virtiofsd.sh),
 * each checked with `--version` (legacy: "virtiofsd version <qemu>", rust: "virtiofsd 1.x").
 * When none fits it THROWS an Error that says how to get one: the tests then fail with that
 * reason instead of being skipped silently.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  allProcesses,
  fdCount,
  fdTable,
  isDead,
  liveChildren,
  procStat,
  waitFor,
  zombieChildren,
} = require('./util.js');

const DIALECTS = ['legacy', 'rust'];

const ENV_VARS = { legacy: 'VIRTIOFSD_LEGACY', rust: 'VIRTIOFSD_RUST' };

/** What `--version` prints, per dialect (first matching line). */
const VERSION_RE = {
  legacy: /^virtiofsd version \S+/m,
  rust: /^virtiofsd v?\d+\.\d+\S*/m,
};

/** How to get each dialect, for the error message. */
const HOW_TO_GET = {
  legacy:
    'Run scripts/setup.sh: Debian 12 ships it (qemu-system-common, /usr/lib/qemu/virtiofsd); elsewhere ' +
    'setup.sh unpacks the Debian 12 package into .cache/virtiofsd-legacy (scripts/get-virtiofsd.sh legacy).',
  rust:
    'Run scripts/setup.sh: Debian 13 ships it (package virtiofsd, /usr/libexec/virtiofsd); on Debian 12 ' +
    'setup.sh unpacks the Debian 13 package into .cache/virtiofsd-rust (scripts/get-virtiofsd.sh rust).',
};

/** The `--version` text of bin (stdout + stderr), or null when it cannot be run. */
function versionText(bin) {
  try {
    const out = execFileSync(bin, ['--version'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return out;
  } catch (err) {
    // Some builds print the version on stderr or exit non-zero; use whatever came out.
    const text = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    return text === '' ? null : text;
  }
}

/** The version line if bin is a virtiofsd of dialect, else null. */
function versionLine(bin, dialect) {
  const text = versionText(bin);
  if (text === null) return null;
  const m = VERSION_RE[dialect].exec(text);
  return m ? m[0] : null;
}

function wellKnownPaths(dialect) {
  return [
    '/usr/lib/qemu/virtiofsd',
    '/usr/libexec/virtiofsd',
    path.join(__dirname, '..', '..', '.cache', `virtiofsd-${dialect}`, 'virtiofsd'),
  ];
}

const found = new Map();

/**
 * The path of a runnable virtiofsd of `dialect` ('legacy' | 'rust'). Throws (and keeps
 * throwing, the answer is cached) when there is none, with how to get one.
 */
function virtiofsdPath(dialect) {
  if (!DIALECTS.includes(dialect)) throw new TypeError(`unknown virtiofsd dialect ${JSON.stringify(dialect)}`);
  if (found.has(dialect)) {
    const r = found.get(dialect);
    if (r instanceof Error) throw r;
    return r;
  }
  let result;
  const envVar = ENV_VARS[dialect];
  const fromEnv = process.env[envVar];
  if (fromEnv) {
    result = versionLine(fromEnv, dialect)
      ? fromEnv
      : new Error(
          `$${envVar}=${fromEnv} is not a runnable ${dialect} virtiofsd (its --version does not match ` +
            `${VERSION_RE[dialect]}: ${JSON.stringify((versionText(fromEnv) ?? '<cannot run>').slice(0, 200))}). ` +
            HOW_TO_GET[dialect],
        );
  } else {
    const tried = [];
    for (const candidate of wellKnownPaths(dialect)) {
      if (!fs.existsSync(candidate)) {
        tried.push(`${candidate} (missing)`);
        continue;
      }
      if (versionLine(candidate, dialect)) {
        result = candidate;
        break;
      }
      tried.push(`${candidate} (not the ${dialect} dialect)`);
    }
    result ??= new Error(
      `no ${dialect} virtiofsd found: $${envVar} is not set and none of the well-known paths fits ` +
        `(${tried.join(', ')}). ${HOW_TO_GET[dialect]}`,
    );
  }
  found.set(dialect, result);
  if (result instanceof Error) throw result;
  return result;
}

/** The processes of process group pgid that are alive (zombies do not count). */
function liveGroupMembers(pgid) {
  return allProcesses().filter((st) => st.pgrp === pgid && !isDead(st));
}

/** The live processes of any of the process groups in pgids (a Set or array of numbers). */
function liveMembersOfGroups(pgids) {
  const set = pgids instanceof Set ? pgids : new Set(pgids);
  return allProcesses().filter((st) => set.has(st.pgrp) && !isDead(st));
}

// allProcesses … zombieChildren are util.js's, re-exported so that a daemon test needs one import.
module.exports = {
  DIALECTS,
  ENV_VARS,
  allProcesses,
  fdCount,
  fdTable,
  liveChildren,
  liveGroupMembers,
  liveMembersOfGroups,
  procStat,
  versionLine,
  virtiofsdPath,
  waitFor,
  wellKnownPaths,
  zombieChildren,
};

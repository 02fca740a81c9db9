'use strict';
/**
 * buildVirtiofsdArgs (src/virtiofsd.ts): the argv each dialect gets, as golden lists. Pure: no
 * daemon runs.
 *
 * Build first: npm run build:ts
 * Run: node --test test/virtiofsd-argv.test.js
 */
const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { buildVirtiofsdArgs, InvalidOptionError } = require('../dist/index.js');
const h = require('./helpers/daemons.js');

describe('buildVirtiofsdArgs (argv golden)', () => {
  // A source with a comma, a backslash and a space: `/srv/a,b\c d`.
  const src = '/srv/a,b\\c d';
  const legacySource = 'source=/srv/a\\,b\\\\c d'; // `\` -> `\\`, `,` -> `\,`

  const golden = {
    legacy: {
      'debug=false syslog=false': ['-o', 'cache=auto', '-o', 'no_posix_lock', '-o', legacySource, '--fd=3', '-f'],
      'debug=true syslog=false': ['-o', 'cache=auto', '-o', 'no_posix_lock', '-o', legacySource, '--fd=3', '-d'],
      'debug=false syslog=true': [
        '--syslog',
        '-o',
        'cache=auto',
        '-o',
        'no_posix_lock',
        '-o',
        legacySource,
        '--fd=3',
        '-f',
      ],
      'debug=true syslog=true': [
        '--syslog',
        '-o',
        'cache=auto',
        '-o',
        'no_posix_lock',
        '-o',
        legacySource,
        '--fd=3',
        '-d',
      ],
    },
    rust: {
      'debug=false syslog=false': ['--cache=auto', '--shared-dir=/srv/a,b\\c d', '--fd=3'],
      'debug=true syslog=false': ['--cache=auto', '--shared-dir=/srv/a,b\\c d', '--fd=3', '--log-level=debug'],
      'debug=false syslog=true': ['--syslog', '--cache=auto', '--shared-dir=/srv/a,b\\c d', '--fd=3'],
      'debug=true syslog=true': [
        '--syslog',
        '--cache=auto',
        '--shared-dir=/srv/a,b\\c d',
        '--fd=3',
        '--log-level=debug',
      ],
    },
  };

  for (const dialect of h.DIALECTS) {
    for (const debug of [false, true]) {
      for (const syslog of [false, true]) {
        const key = `debug=${debug} syslog=${syslog}`;
        test(`${dialect} ${key}`, () => {
          const base = { dialect, sourcePath: src, cache: 'auto', syslog, debug };
          assert.deepEqual(buildVirtiofsdArgs({ ...base, extraArgs: [] }), golden[dialect][key]);
          // extraArgs come last, as they are.
          const extra = ['--thread-pool-size=4', '-o', 'x,y'];
          assert.deepEqual(buildVirtiofsdArgs({ ...base, extraArgs: extra }), [...golden[dialect][key], ...extra]);
        });
      }
    }
  }

  test('cache modes: legacy spells never as none and refuses metadata; rust passes them through', () => {
    const args = (dialect, cache) =>
      buildVirtiofsdArgs({ dialect, sourcePath: '/s', cache, syslog: false, debug: false, extraArgs: [] });
    assert.deepEqual(args('legacy', 'never'), [
      '-o',
      'cache=none',
      '-o',
      'no_posix_lock',
      '-o',
      'source=/s',
      '--fd=3',
      '-f',
    ]);
    assert.deepEqual(args('legacy', 'always'), [
      '-o',
      'cache=always',
      '-o',
      'no_posix_lock',
      '-o',
      'source=/s',
      '--fd=3',
      '-f',
    ]);
    assert.deepEqual(args('rust', 'never'), ['--cache=never', '--shared-dir=/s', '--fd=3']);
    assert.deepEqual(args('rust', 'metadata'), ['--cache=metadata', '--shared-dir=/s', '--fd=3']);
    assert.throws(
      () => args('legacy', 'metadata'),
      (err) => err instanceof InvalidOptionError && err.code === 'ERR_INVALID_OPTION' && err.option === 'cache',
    );
  });

  test('is pure: nothing is touched for a source that does not exist', () => {
    const missing = path.join(os.tmpdir(), `vfsd-never-created-${process.pid}`);
    buildVirtiofsdArgs({
      dialect: 'legacy',
      sourcePath: missing,
      cache: 'auto',
      syslog: false,
      debug: false,
      extraArgs: [],
    });
    assert.equal(fs.existsSync(missing), false);
  });
});

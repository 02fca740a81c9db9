'use strict';
/**
 * The library run by whoever runs this file, for the tests that play a desktop app's user:
 * `node as-user.js <body>` runs `body`, the body of an async function given `lib` (dist/index.js)
 * and `require`, and prints one JSON line: `{ value }` (what it returned) or `{ error: { name,
 * code, option, message } }` (what it threw). Run through users.js's runAs, it is the library
 * as that user, in a process of its own, with the environment the test gives it.
 */
const body = process.argv[2];
if (!body) {
  // `node --test test/` loads every .js under test/, helpers included: nothing to do then.
  return;
}
const lib = require('../../dist/index.js');

const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

(async () => {
  const fn = new Function('lib', 'require', `return (async () => {\n${body}\n})();`);
  print({ value: (await fn(lib, require)) ?? null });
})().catch((err) => {
  const { name, code, option, message } = err ?? {};
  print({ error: { name, code, option, message: String(message ?? err) } });
  process.exitCode = 1;
});

'use strict';
/**
 * Where the addon is looked for, in order (the one list the loader in src/native.ts, the install
 * script and the prebuild script share):
 *   1. build/Release/virtiofs_daemon.node — a build from source (`npm run build`, `npm rebuild`),
 *      so that a local build always wins;
 *   2. prebuilds/<platform>-<arch>/<prebuildify name> — the binary shipped in the npm tarball.
 * Paths are absolute, under the package's own directory, whatever the app's layout or cwd.
 */
const path = require('node:path');

/** The package's own directory (this file is <root>/scripts/addon-path.js). */
const PACKAGE_ROOT = path.resolve(__dirname, '..');

/** prebuildify's name for a Node-API build: runtime `node`, tag `napi`, and `armv8` on arm64. */
function prebuildName(arch) {
  return arch === 'arm64' ? 'node.napi.armv8.node' : 'node.napi.node';
}

/** The prebuild for platform-arch, relative to the package root. */
function prebuildPath(platform, arch) {
  return path.join('prebuilds', `${platform}-${arch}`, prebuildName(arch));
}

/** The addon's candidate paths for this process, most preferred first. */
function addonSearchList(root = PACKAGE_ROOT, platform = process.platform, arch = process.arch) {
  return [path.join(root, 'build', 'Release', 'virtiofs_daemon.node'), path.join(root, prebuildPath(platform, arch))];
}

module.exports = { PACKAGE_ROOT, addonSearchList, prebuildName, prebuildPath };

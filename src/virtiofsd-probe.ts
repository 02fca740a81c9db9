/**
 * What an installed virtiofsd says about itself: its dialect and version (`--version`) and its
 * features (`--print-capabilities`, as libvirt and Incus ask). Asked once per binary path, size
 * and mtime, whatever the number of starts: one probe per binary, shared by concurrent starts.
 */
import { askBinary, captureOutput } from './daemon-process.js';
import { describeValue } from './describe.js';
import { InvalidOptionError } from './errors.js';
import type { Dialect } from './virtiofsd-args.js';
import { parseVersion, type VirtiofsdRelease } from './virtiofsd-releases.js';

/** What {@link probeVirtiofsd} learnt from a virtiofsd binary. */
export interface VirtiofsdFacts extends VirtiofsdRelease {
  /** The binary asked. */
  path: string;
  /** `legacy` (`virtiofsd version <qemu>`) or `rust` (`virtiofsd <semver>`). */
  dialect: Dialect;
  /**
   * Its version: the Rust daemon's own (`1.13.2`), the legacy daemon's QEMU version (`7.2.22`);
   * null when `--version` names none.
   */
  version: string | null;
  /**
   * The `features` its `--print-capabilities` lists (`migrate-precopy`, `separate-options`), `[]`
   * when it lists none (the legacy daemon); null when it printed no JSON (Rust releases before
   * 1.11.1 refuse `--print-capabilities` without `--shared-dir`).
   */
  capabilities: string[] | null;
}

/** The answers of one binary, identified or not (then `dialect` is null and `text` says why). */
interface Answers {
  dialect: Dialect | null;
  version: string | null;
  capabilities: string[] | null;
  text: string;
}

const cache = new Map<string, Promise<Answers>>();

/** `--print-capabilities`' features; null when it fails, times out or prints something else. */
async function askCapabilities(binary: string): Promise<string[] | null> {
  let out: Awaited<ReturnType<typeof captureOutput>>;
  try {
    out = await captureOutput(binary, ['--print-capabilities']);
  } catch {
    return null; // a capability list is a bonus: the version still decides
  }
  if (out.code !== 0) return null;
  try {
    const json = JSON.parse(out.stdout) as { type?: unknown; features?: unknown };
    if (json === null || typeof json !== 'object' || json.type !== 'fs') return null;
    if (json.features === undefined) return [];
    return Array.isArray(json.features) ? json.features.filter((f): f is string => typeof f === 'string') : null;
  } catch {
    return null;
  }
}

/**
 * Ask `binary` once (per path, size, mtime): `--version`, then, when that names a virtiofsd,
 * `--print-capabilities`. Rejects only when `--version` cannot be run (spawn error, timeout).
 */
function ask(binary: string): Promise<Answers> {
  return askBinary(binary, cache, async () => {
    const out = await captureOutput(binary, ['--version']);
    const text = `${out.stdout}\n${out.stderr}`;
    const legacy = /^virtiofsd version (.*)$/m.exec(text);
    const rust = legacy ? null : /^virtiofsd (v?\d+\.\d+.*)$/m.exec(text);
    const dialect: Dialect | null = legacy ? 'legacy' : rust ? 'rust' : null;
    if (!dialect) return { dialect, version: null, capabilities: null, text };
    const version = parseVersion((legacy ?? rust)![1]);
    return { dialect, version, capabilities: await askCapabilities(binary), text };
  });
}

/**
 * The facts of `binary`. A binary whose `--version` names neither dialect is an
 * {@link InvalidOptionError} for `option`, quoting the output and ending with `hint`.
 */
export async function askVirtiofsd(binary: string, option: string, hint: string): Promise<VirtiofsdFacts> {
  const a = await ask(binary);
  if (!a.dialect) {
    const output = describeValue(a.text.trim().slice(0, 200));
    throw new InvalidOptionError(
      option,
      `cannot tell which virtiofsd '${binary}' is from its --version output ${output}; ${hint}`,
    );
  }
  return { path: binary, dialect: a.dialect, version: a.version, capabilities: a.capabilities };
}

/**
 * What a binary the caller says is the Rust virtiofsd (`dialect: 'rust'`) says of its release;
 * both null when it cannot tell (it does not answer `--version` as virtiofsd does: a wrapper,
 * a stand-in), so that nothing is refused for its release.
 */
export async function askRustRelease(binary: string): Promise<VirtiofsdRelease> {
  const a = await ask(binary).catch(() => null);
  if (a?.dialect !== 'rust') return { version: null, capabilities: null };
  return { version: a.version, capabilities: a.capabilities };
}

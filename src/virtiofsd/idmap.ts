/**
 * Guest ↔ host id mapping for the Rust virtiofsd, as one typed option (`idmap`) whose mechanism
 * the library picks from who runs the daemon:
 *
 * - **an unprivileged user**: `--uid-map=:guest:host:count:` / `--gid-map=…`. The mapping is made
 *   by the user namespace of virtiofsd's namespace sandbox (Rust virtiofsd ≥ 1.6). A map of
 *   nothing but one's own id is written by virtiofsd itself; anything more goes through the
 *   setuid helpers `newuidmap`/`newgidmap` (package `uidmap`), which allow only the ranges
 *   /etc/subuid and /etc/subgid give the user. Guest ids outside the map cannot own anything
 *   (creating or chowning to one fails with EINVAL), host ids outside it look like the overflow
 *   id (65534) to the guest, and guest root is served with the daemon's own credentials (virtiofsd
 *   switches credentials for every guest user but root), so what guest root writes is the user's.
 * - **root**: `--translate-uid` / `--translate-gid` (Rust virtiofsd ≥ 1.13; user namespace id maps
 *   are refused as root), done by virtiofsd itself: each range as `map:guest:host:count` (both
 *   ways), and - as Incus does - every guest id no range maps is forbidden (`forbid-guest`: the
 *   guest gets an error for creating a file as such an id or chowning to it - EIO from virtiofsd
 *   1.13, whose refusal carries no errno), and every host id no
 *   range maps is shown to the guest as the overflow id (`squash-host`), as the user namespace
 *   does. Without these, virtiofsd passes unmapped ids through unchanged, both ways.
 *
 * Everything here is pure but {@link readIdmapHost} (the files it names) and
 * {@link findIdmapHelper} (the PATH); both are called by Virtiofsd.start() before it spawns anything.
 * Sources: virtiofsd 1.13's README and `--help`, its src/sandbox.rs (when newuidmap is used) and
 * src/idmap (how --translate-* parses and applies: ranges are [base, base + count) in u32).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError } from '../common/errors.js';
import { readOptions, rejectUnknownOptions } from '../common/options.js';

/** One past the highest id: (uid_t)-1 is no id, and virtiofsd's ranges end at or below 2**32 - 1. */
export const ID_LIMIT = 4294967295;

/** The most ranges of one kind: the kernel's limit on the lines of a uid_map/gid_map (Linux ≥ 4.15). */
export const MAX_ID_RANGES = 340;

/** The first release of the Rust virtiofsd with `--translate-uid`/`--translate-gid`. */
export const TRANSLATE_SINCE = '1.13.0';

/** `count` ids from `guest` in the guest are `count` ids from `host` on the host. */
export interface IdRange {
  /** The first guest id. */
  guest: number;
  /** The first host id. */
  host: number;
  /** How many ids, at least 1. */
  count: number;
}

/** The explicit form of {@link IdmapOption}: the ranges of uids and of gids, both required. */
export interface IdmapRanges {
  /**
   * The uid ranges: 1 to 340 (the kernel's limit), no two overlapping on the guest side or on
   * the host side. As an unprivileged user, the host ids must be your own uid (count 1) or
   * within your /etc/subuid ranges.
   */
  uid: readonly IdRange[];
  /** The gid ranges, as `uid` (your own gid, or your /etc/subgid ranges). */
  gid: readonly IdRange[];
}

/**
 * The preset "the guest's user N owns my files": the user running the daemon (its euid and
 * egid) is guest user `guestUser` (group `guestGroup`), and no other host id is mapped.
 */
export interface IdmapGuestUser {
  /** The guest uid that owns the files of the user running the daemon (a distribution's first user is 1000). */
  guestUser: number;
  /**
   * The guest gid of the daemon user's group.
   * @default guestUser
   */
  guestGroup?: number;
}

/** What the `idmap` option takes: `'auto'`, {@link IdmapGuestUser} or {@link IdmapRanges}. */
export type IdmapOption = 'auto' | IdmapGuestUser | IdmapRanges;

/** {@link IdmapOption} checked and normalised. */
export type Idmap =
  | {
      /** `'auto'`: guest 0 is the daemon's user, guest 1 and up its first /etc/subuid (/etc/subgid) range. */
      form: 'auto';
    }
  | {
      /** The {@link IdmapGuestUser} preset. */
      form: 'guestUser';
      /** The guest uid of the daemon's user (`guestUser`). */
      uid: number;
      /** The guest gid of the daemon's group (`guestGroup`, else `guestUser`). */
      gid: number;
    }
  | {
      /** Explicit {@link IdmapRanges}. */
      form: 'ranges';
      /** The uid ranges, each checked, none overlapping another. */
      uid: IdRange[];
      /** The gid ranges, each checked, none overlapping another. */
      gid: IdRange[];
    };

/** A range of subordinate ids of /etc/subuid or /etc/subgid. */
export interface SubIdRange {
  /** The first id of the range. */
  start: number;
  /** How many ids, at least 1. */
  count: number;
}

/** What the host says that the mapping depends on (see {@link readIdmapHost}). */
export interface IdmapHost {
  /** The uid the daemon will run as: ours. 0 (root) maps with `--translate-uid`, any other with `--uid-map`. */
  euid: number;
  /** The gid the daemon will run as: ours. */
  egid: number;
  /** The name of `euid` (/etc/subuid names users by name or uid), null when it has none. */
  user: string | null;
  /** The user's ranges in /etc/subuid, in file order; none when it has none there, or there is no such file. */
  subuid: SubIdRange[];
  /** The user's ranges in /etc/subgid, as `subuid`. */
  subgid: SubIdRange[];
  /**
   * What the kernel shows for an unmapped uid (/proc/sys/kernel/overflowuid; 65534 when it
   * cannot be read): as root, the host uids no range maps are shown to the guest as this.
   */
  overflowUid: number;
  /** The same for gids (/proc/sys/kernel/overflowgid). */
  overflowGid: number;
  /** The Rust virtiofsd's version (`1.13.2`), null when unknown: then nothing is refused for its release. */
  rustVersion: string | null;
}

/** How the daemon maps ids: its arguments, and the helpers it will run. */
export interface IdmapPlan {
  /**
   * `uid-map`: the user namespace of virtiofsd's namespace sandbox (`--uid-map`/`--gid-map`),
   * for an unprivileged user; `translate`: virtiofsd's own translation
   * (`--translate-uid`/`--translate-gid`, unmapped ids forbidden or squashed), for root.
   */
  mechanism: 'uid-map' | 'translate';
  /** The uid ranges mapped, the form expanded (`'auto'` and the preset as the ranges they stand for). */
  uid: IdRange[];
  /** The gid ranges mapped, as `uid`. */
  gid: IdRange[];
  /** The daemon's arguments that make the mapping, in command-line order. */
  args: string[];
  /** The setuid helpers virtiofsd runs to write the maps (unprivileged, beyond one's own id). */
  helpers: ('newuidmap' | 'newgidmap')[];
}

const KINDS = ['uid', 'gid'] as const;
type Kind = (typeof KINDS)[number];

const FORMS =
  "use 'auto', { guestUser: 1000 } (optionally guestGroup) or { uid: [{ guest, host, count }], gid: [{ guest, host, count }] }";

/** Other names callers reach for, and the option they mean. */
const HINTS: Readonly<Record<string, string>> = {
  user: 'guestUser',
  group: 'guestGroup',
  guestUid: 'guestUser',
  guestGid: 'guestGroup',
  uidMap: 'uid',
  gidMap: 'gid',
  uids: 'uid',
  gids: 'gid',
};

function requireId(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= ID_LIMIT) {
    throw new InvalidOptionError(
      option,
      `${describeValue(value)} is not an id; use a whole number from 0 to ${ID_LIMIT - 1}`,
    );
  }
  return value;
}

/** The ranges of one kind, read once (length first, each entry and field once). */
function requireRanges(option: string, value: unknown): IdRange[] {
  const example = `e.g. [{ guest: 1000, host: ${process.geteuid?.() ?? 1000}, count: 1 }]`;
  if (!Array.isArray(value)) {
    throw new InvalidOptionError(option, `${describeValue(value)} is not a list of ranges; give one, ${example}`);
  }
  const length: unknown = value.length;
  if (typeof length !== 'number' || length < 1 || length > MAX_ID_RANGES) {
    throw new InvalidOptionError(
      option,
      `has ${describeValue(length)} ranges; give 1 to ${MAX_ID_RANGES} (the kernel's limit), ${example}`,
    );
  }
  const ranges: IdRange[] = [];
  for (let i = 0; i < length; i++) {
    const at = `${option}[${i}]`;
    const entry: unknown = (value as unknown[])[i];
    if (entry === null || typeof entry !== 'object') {
      throw new InvalidOptionError(at, `${describeValue(entry)} is not a range; write { guest, host, count }`);
    }
    rejectUnknownOptions(`a range of ${option}`, entry, ['guest', 'host', 'count'], { prefix: `${at}.` });
    const r = readOptions(entry, ['guest', 'host', 'count'], `${at}.`);
    const guest = requireId(`${at}.guest`, r.guest);
    const host = requireId(`${at}.host`, r.host);
    const count = r.count;
    const room = ID_LIMIT - Math.max(guest, host);
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > room) {
      throw new InvalidOptionError(
        `${at}.count`,
        `${describeValue(count)} is not a count for ids from ${guest} (guest) and ${host} (host); use a whole number ` +
          `from 1 to ${room}, so that no id reaches ${ID_LIMIT} ((uid_t)-1)`,
      );
    }
    ranges.push({ guest, host, count });
  }
  return ranges;
}

/**
 * The `idmap` option checked (`undefined`: none): its form, ids and counts, and that no two
 * ranges of one kind overlap on either side. Throws an {@link InvalidOptionError} naming the
 * field at fault. What depends on the host (who runs the daemon, /etc/subuid) is checked by
 * {@link planIdmap}.
 */
export function requireIdmap(value: unknown): Idmap | undefined {
  if (value === undefined) return undefined;
  if (value === 'auto') return { form: 'auto' };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError('idmap', `${describeValue(value)} is not an id map; ${FORMS}`);
  }
  const keys = ['guestUser', 'guestGroup', 'uid', 'gid'];
  rejectUnknownOptions('idmap', value, keys, { prefix: 'idmap.', hints: HINTS });
  const o = readOptions(value, keys, 'idmap.');
  const preset = o.guestUser !== undefined || o.guestGroup !== undefined;
  if (preset && (o.uid !== undefined || o.gid !== undefined)) {
    throw new InvalidOptionError(
      'idmap',
      'mixes the guestUser preset with uid/gid ranges; give one of them (the preset is the range { guest: guestUser, host: <your uid>, count: 1 })',
    );
  }
  if (preset) {
    if (o.guestUser === undefined) {
      throw new InvalidOptionError(
        'idmap.guestUser',
        'is required with guestGroup: the guest uid that owns your files',
      );
    }
    const uid = requireId('idmap.guestUser', o.guestUser);
    const gid = o.guestGroup === undefined ? uid : requireId('idmap.guestGroup', o.guestGroup);
    return { form: 'guestUser', uid, gid };
  }
  const ranges = {} as Record<Kind, IdRange[]>;
  for (const kind of KINDS) {
    if (o[kind] === undefined) {
      throw new InvalidOptionError(
        `idmap.${kind}`,
        `is required: map ${kind}s too (without it the daemon's own ${kind} would be the only one), or ${FORMS}`,
      );
    }
    ranges[kind] = requireRanges(`idmap.${kind}`, o[kind]);
    checkDisjoint(`idmap.${kind}`, ranges[kind], 'guest');
    checkDisjoint(`idmap.${kind}`, ranges[kind], 'host');
  }
  return { form: 'ranges', uid: ranges.uid, gid: ranges.gid };
}

/** No two of `ranges` overlap on `side`: each id maps one way only. */
function checkDisjoint(option: string, ranges: readonly IdRange[], side: 'guest' | 'host'): void {
  const order = ranges.map((r, i) => ({ r, i })).sort((a, b) => a.r[side] - b.r[side]);
  for (let k = 1; k < order.length; k++) {
    const a = order[k - 1];
    const b = order[k];
    if (a.r[side] + a.r.count > b.r[side]) {
      const [first, second] = a.i < b.i ? [a, b] : [b, a];
      throw new InvalidOptionError(
        `${option}[${second.i}]`,
        `${describe(second.r)} overlaps ${option}[${first.i}] ${describe(first.r)} on the ${side} side; ` +
          `each ${side} id may be in one range only`,
      );
    }
  }
}

function describe(r: IdRange): string {
  return `(guest ${span(r.guest, r.count)} → host ${span(r.host, r.count)})`;
}

function span(start: number, count: number): string {
  return count === 1 ? `${start}` : `${start}-${start + count - 1}`;
}

/** The user's ranges in an /etc/subuid-format file: lines `name-or-uid:start:count`; none when it is missing. */
function readSubIds(file: string, user: string | null, id: number): SubIdRange[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const m = /^([^:]+):(\d+):(\d+)$/.exec(line.trim());
    if (!m || (m[1] !== user && m[1] !== String(id))) continue;
    const start = Number(m[2]);
    const count = Number(m[3]);
    if (count > 0 && start + count <= ID_LIMIT) out.push({ start, count });
  }
  return out;
}

function readOverflow(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n >= 0 && n < ID_LIMIT ? n : 65534;
  } catch {
    return 65534;
  }
}

/**
 * The facts of this host the mapping depends on: who we are (the daemon runs as us), our
 * ranges in /etc/subuid and /etc/subgid (the files newuidmap reads; matched by user name or
 * uid, as shadow does), and the overflow ids. `rustVersion` is the caller's to fill in.
 */
export function readIdmapHost(rustVersion: string | null = null): IdmapHost {
  const euid = process.geteuid!();
  const egid = process.getegid!();
  let user: string | null = null;
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry for our uid: /etc/subuid can still name us by number.
  }
  return {
    euid,
    egid,
    user,
    subuid: readSubIds('/etc/subuid', user, euid),
    // /etc/subgid names its owner as /etc/subuid does: by user name or uid, never by gid
    // (shadow's newgidmap matches the calling user's name and uid).
    subgid: readSubIds('/etc/subgid', user, euid),
    overflowUid: readOverflow('/proc/sys/kernel/overflowuid'),
    overflowGid: readOverflow('/proc/sys/kernel/overflowgid'),
    rustVersion,
  };
}

/** Negative, 0 or positive as version `a` is older than, the same as or newer than `b` (`x.y.z`). */
function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** What else decides the plan: the typed options it must agree with. */
export interface IdmapContext {
  /** The `sandbox` typed option, if set. */
  sandbox?: string | undefined;
  /** The `posixAcl` typed option, if set. */
  posixAcl?: boolean | undefined;
  /** The binary, for messages. */
  binary?: string | undefined;
}

/**
 * How `idmap` is done on `host`: the ranges of each kind (see {@link IdmapOption} for each
 * form), the mechanism (unprivileged: `--uid-map`/`--gid-map`; root: `--translate-uid`/
 * `--translate-gid` with the gaps forbidden and squashed), its arguments and the helpers it
 * needs. Throws an {@link InvalidOptionError} for what cannot work here, naming the fix: no
 * /etc/subuid range for `'auto'`; a host range the user's /etc/subuid (or subgid) does not give
 * it; a `sandbox` other than namespace as a user; as root, a Rust virtiofsd older than 1.13, or
 * `posixAcl: true` (virtiofsd refuses to translate ids with POSIX ACLs).
 */
export function planIdmap(idmap: Idmap, host: IdmapHost, ctx: IdmapContext = {}): IdmapPlan {
  const root = host.euid === 0;
  const own = { uid: host.euid, gid: host.egid };
  const sub = { uid: host.subuid, gid: host.subgid };
  const ranges = {} as Record<Kind, IdRange[]>;
  for (const kind of KINDS) {
    if (idmap.form === 'ranges') ranges[kind] = idmap[kind];
    else if (idmap.form === 'guestUser') ranges[kind] = [{ guest: idmap[kind], host: own[kind], count: 1 }];
    else {
      const first = sub[kind][0];
      if (!first) {
        const who = host.user ? `user ${host.user} (uid ${host.euid})` : `uid ${host.euid}`;
        throw new InvalidOptionError(
          'idmap',
          `'auto' maps guest ${kind}s 1 and up to your first range in /etc/sub${kind}, and ${who} has none there. ` +
            `Have one added (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${host.user ?? '<user>'}), ` +
            'or use idmap: { guestUser: 1000 }, which maps your own ids only and needs no range',
        );
      }
      ranges[kind] = [
        { guest: 0, host: own[kind], count: 1 },
        { guest: 1, host: first.start, count: Math.min(first.count, ID_LIMIT - 1) },
      ];
      checkDisjoint(`idmap ('auto': your ${kind} and your first /etc/sub${kind} range)`, ranges[kind], 'host');
    }
  }
  return root ? planTranslate(idmap, ranges, host, ctx) : planUserNamespace(ranges, host, ctx);
}

function planUserNamespace(ranges: Record<Kind, IdRange[]>, host: IdmapHost, ctx: IdmapContext): IdmapPlan {
  if (ctx.sandbox !== undefined && ctx.sandbox !== 'namespace') {
    throw new InvalidOptionError(
      'sandbox',
      `'${ctx.sandbox}' contradicts idmap: as uid ${host.euid} the ids are mapped by the user namespace of ` +
        "virtiofsd's namespace sandbox. Leave sandbox unset (or 'namespace'), or drop idmap",
    );
  }
  const own = { uid: host.euid, gid: host.egid };
  const sub = { uid: host.subuid, gid: host.subgid };
  const helpers: IdmapPlan['helpers'] = [];
  const args: string[] = [];
  for (const kind of KINDS) {
    ranges[kind].forEach((r, i) => {
      const mine = r.host === own[kind] && r.count === 1;
      if (mine || sub[kind].some((s) => r.host >= s.start && r.host + r.count <= s.start + s.count)) return;
      const allowed = sub[kind].map((s) => span(s.start, s.count)).join(', ') || 'none';
      throw new InvalidOptionError(
        `idmap.${kind}[${i}]`,
        `maps host ${kind}s ${span(r.host, r.count)}, which uid ${host.euid} may not map: a user may map its own ` +
          `${kind} (${own[kind]}) and the ranges /etc/sub${kind} gives it (${allowed}). ` +
          `Use host ids from those, or have a range added (as root: usermod --add-sub${kind}s <first>-<last> ${host.user ?? '<user>'})`,
      );
    });
    const trivial = ranges[kind].length === 1 && ranges[kind][0].host === own[kind] && ranges[kind][0].count === 1;
    if (!trivial) helpers.push(kind === 'uid' ? 'newuidmap' : 'newgidmap');
    for (const r of ranges[kind]) args.push(`--${kind}-map=:${r.guest}:${r.host}:${r.count}:`);
  }
  return { mechanism: 'uid-map', uid: ranges.uid, gid: ranges.gid, args, helpers };
}

function planTranslate(idmap: Idmap, ranges: Record<Kind, IdRange[]>, host: IdmapHost, ctx: IdmapContext): IdmapPlan {
  if (host.rustVersion !== null && compareVersions(host.rustVersion, TRANSLATE_SINCE) < 0) {
    throw new InvalidOptionError(
      'idmap',
      `as root the ids are mapped by virtiofsd itself (--translate-uid/--translate-gid), which the Rust virtiofsd ` +
        `has since ${TRANSLATE_SINCE}, and ${ctx.binary ? `'${ctx.binary}'` : 'this one'} is ${host.rustVersion}. ` +
        'Install virtiofsd 1.13 or later (Debian 13: apt install virtiofsd) and set path to it, or run the manager as the user whose files these are (then user namespace maps, since 1.6, do it)',
    );
  }
  if (ctx.posixAcl === true) {
    throw new InvalidOptionError(
      'posixAcl',
      'true contradicts idmap as root: virtiofsd refuses --translate-uid/--translate-gid with --posix-acl ' +
        '(translated ids would break the ACLs). Drop one of them',
    );
  }
  const own = { uid: host.euid, gid: host.egid };
  const overflow = { uid: host.overflowUid, gid: host.overflowGid };
  const args: string[] = [];
  for (const kind of KINDS) {
    const flag = `--translate-${kind}`;
    const list = ranges[kind];
    for (const r of list) args.push(`${flag}=map:${r.guest}:${r.host}:${r.count}`);
    const guestTaken = list.map((r) => ({ start: r.guest, count: r.count }));
    // The preset: guest root acts as the daemon's user, as it does in the user namespace.
    if (idmap.form === 'guestUser' && !list.some((r) => r.guest === 0)) {
      args.push(`${flag}=squash-guest:0:${own[kind]}:1`);
      guestTaken.push({ start: 0, count: 1 });
    }
    for (const gap of gaps(guestTaken)) args.push(`${flag}=forbid-guest:${gap.start}:${gap.count}`);
    for (const gap of gaps(list.map((r) => ({ start: r.host, count: r.count })))) {
      args.push(`${flag}=squash-host:${gap.start}:${overflow[kind]}:${gap.count}`);
    }
  }
  return { mechanism: 'translate', uid: ranges.uid, gid: ranges.gid, args, helpers: [] };
}

/** What [0, ID_LIMIT) holds besides `taken` (disjoint), in order. */
function gaps(taken: SubIdRange[]): SubIdRange[] {
  const out: SubIdRange[] = [];
  let next = 0;
  for (const t of [...taken].sort((a, b) => a.start - b.start)) {
    if (t.start > next) out.push({ start: next, count: t.start - next });
    next = Math.max(next, t.start + t.count);
  }
  if (next < ID_LIMIT) out.push({ start: next, count: ID_LIMIT - next });
  return out;
}

/**
 * Where `name` (newuidmap, newgidmap) is on `pathVar` (the daemon's PATH; unset: glibc's default
 * /bin:/usr/bin, what virtiofsd's exec would search), as an executable regular file; null when
 * it is not there.
 */
export function findIdmapHelper(name: string, pathVar: string | undefined): string | null {
  for (const dir of (pathVar ?? '/bin:/usr/bin').split(':')) {
    if (!path.isAbsolute(dir)) continue; // a relative PATH entry would depend on the daemon's working directory
    const file = path.join(dir, name);
    try {
      if (!fs.statSync(file).isFile()) continue;
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The helpers of `plan` that are not on the daemon's PATH, as an {@link InvalidOptionError}
 * naming the `uidmap` package (virtiofsd itself would only say "failed to execute newuidmap").
 */
export function checkIdmapHelpers(plan: IdmapPlan, pathVar: string | undefined): void {
  const missing = plan.helpers.filter((h) => findIdmapHelper(h, pathVar) === null);
  if (missing.length === 0) return;
  throw new InvalidOptionError(
    'idmap',
    `maps ids beyond your own, which virtiofsd does through ${plan.helpers.join(' and ')}, and ` +
      `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not on the daemon's PATH (${pathVar ?? '/bin:/usr/bin'}). ` +
      'Install the uidmap package (Debian, Ubuntu: apt install uidmap; Fedora: shadow-utils), or use ' +
      'idmap: { guestUser: 1000 }, which maps your own ids only and needs no helper',
  );
}

/** The option form of a checked {@link Idmap} (what {@link requireIdmap} takes back). */
export function idmapOptionOf(idmap: Idmap): IdmapOption {
  if (idmap.form === 'auto') return 'auto';
  if (idmap.form === 'guestUser') return { guestUser: idmap.uid, guestGroup: idmap.gid };
  return { uid: idmap.uid, gid: idmap.gid };
}

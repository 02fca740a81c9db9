/**
 * Start, watch and stop the host-side daemons of virtio-fs from Node.js and Electron:
 * {@link Virtiofsd} (the Rust virtiofsd, or the legacy C one of QEMU ≤ 7.2) and {@link Nydusd}
 * (nydusd in virtio-fs mode). Both implement {@link VirtiofsDaemon}: start() resolves to the
 * pid once the daemon is ready, onQuit reports its end exactly once, stop() leaves nothing
 * behind; {@link MockVirtiofsDaemon} stands in for them in unit tests. Every error is a
 * {@link VirtiofsDaemonError} with a stable `code`.
 *
 * Also here: QEMU's arguments for a share ({@link qemuArgs}), Kata's configuration
 * ({@link fromKataConfig}), daemons that outlive their manager ({@link DaemonHandle},
 * {@link Virtiofsd.adopt}), Prometheus metrics ({@link daemonMetrics}), and the command lines
 * alone ({@link buildVirtiofsdArgs}, {@link buildNydusdArgs}). The system primitives underneath
 * are `virtiofs-daemon/native`.
 *
 * @module virtiofs-daemon
 */
export type { DaemonExit, MountOption, VirtiofsDaemon } from './common/types.js';
export {
  Virtiofsd,
  buildVirtiofsdArgs,
  detectDialect,
  probeVirtiofsd,
  READY_MARKER,
  resolveVirtiofsdOptions,
  WELL_KNOWN_VIRTIOFSD_PATHS,
  type ResolvedVirtiofsdOptions,
  type CacheMode,
  type Dialect,
  type VirtiofsdAdoptOptions,
  type VirtiofsdArgsInput,
  type VirtiofsdOptions,
} from './virtiofsd/virtiofsd.js';
export {
  findVirtiofsd,
  isLegacyVirtiofsd,
  vhostUserBackends,
  vhostUserDirs,
  type FoundVirtiofsd,
  type VhostUserBackend,
} from './virtiofsd/virtiofsd-binary.js';
export {
  ID_LIMIT,
  planIdmap,
  readIdmapHost,
  requireIdmap,
  type IdRange,
  type Idmap,
  type IdmapContext,
  type IdmapGuestUser,
  type IdmapHost,
  type IdmapOption,
  type IdmapPlan,
  type IdmapRanges,
  type SubIdRange,
} from './virtiofsd/idmap.js';
export { runtimeDir } from './process/runtime-dir.js';
export {
  HANDLE_FORMAT,
  type DaemonHandle,
  type DaemonKind,
  type HandleTrust,
  type Lifetime,
  type SocketRecord,
} from './process/handle.js';
export {
  VIRTIOFSD_OPTIONS,
  escapeLegacyOptionValue,
  normalizeCacheMode,
  type VirtiofsdLogLevel,
  type VirtiofsdOptionKind,
  type VirtiofsdOptionSpec,
  type VirtiofsdOptionSpelling,
  type VirtiofsdTypedOptions,
} from './virtiofsd/virtiofsd-args.js';
export type { VirtiofsdFacts } from './virtiofsd/virtiofsd-probe.js';
export { RUST_VIRTIOFSD_SINCE, type VirtiofsdRelease } from './common/virtiofsd-releases.js';
export { checkExtraArgs, type ArgsTable, type ExtraArgsClaims, type ExtraArgsPolicy } from './common/extra-args.js';
export { MockVirtiofsDaemon, MOCK_PID, type MockVirtiofsDaemonOptions } from './mock.js';
export {
  DaemonAdoptedError,
  DaemonGoneError,
  DaemonNotPermittedError,
  DaemonRunningError,
  DaemonStartError,
  HandleProofError,
  InvalidOptionError,
  NotSupportedError,
  NydusApiError,
  SystemError,
  UntrustedFileError,
  VirtiofsDaemonError,
  type ExitStatus,
  type HandleProof,
  type UntrustedReason,
} from './common/errors.js';
export {
  LineScanner,
  parseDaemonLine,
  type DaemonLogLevel,
  type LineInfo,
  type LineScannerOptions,
  type ParsedDaemonLine,
} from './process/lines.js';
export {
  MIN_NYDUSD_VERSION,
  detectNydusdVersion,
  nydusdCliFor,
  parseNydusdVersion,
  requireNydusdVersion,
  type NydusdArgsInput,
  type NydusdCli,
  type NydusdLogLevel,
  type NydusdVersion,
} from './nydusd/nydusd-args.js';
export {
  Nydusd,
  buildNydusdArgs,
  resolveNydusdOptions,
  WELL_KNOWN_NYDUSD_PATHS,
  SHARED_MOUNTPOINT,
  type NydusdAdoptOptions,
  type NydusdOptions,
  type ResolvedNydusdOptions,
} from './nydusd/nydusd.js';
export {
  NydusClient,
  NYDUS_STATS_FOPS,
  encodeQueryValue,
  type NydusFsMetrics,
  type DaemonInfo,
  type NydusBuildInfo,
  type NydusClientOptions,
  type NydusFsBackend,
  type NydusDaemonState,
  type NydusMountCmd,
} from './nydusd/nydus-client.js';
export {
  fromKataConfig,
  parseExtraOption,
  MAX_EXTRA_OPTION_BYTES,
  ExtraOptionError,
  type KataVirtiofsConfig,
  type KataVirtiofsdOptions,
  type NydusExtraOption,
} from './kata/kata.js';
export { cgroup2Mount, ownCgroup, type CgroupRecord, type CgroupStats } from './process/cgroup.js';
export type { DaemonStats, FdWarnOptions } from './process/process-stats.js';
export {
  daemonMetrics,
  type DaemonMetrics,
  type DaemonMetricsOptions,
  type MetricsRegistry,
  type TrackOptions,
} from './metrics/metrics.js';
export {
  qemuArgs,
  qemuOptionValue,
  MAX_TAG_BYTES,
  type DaemonQemuArgsOptions,
  type QemuArgsOptions,
} from './common/qemu.js';

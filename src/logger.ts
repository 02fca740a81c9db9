import pino, { type Logger } from 'pino';

let root: Logger | undefined;

/** The logger for one daemon: the caller's, or a default pino logger, tagged `{ subsystem }`. */
export function subsystemLogger(subsystem: string, logger?: Logger): Logger {
  root ??= pino({ name: 'virtiofs-daemon' });
  return (logger ?? root).child({ subsystem });
}

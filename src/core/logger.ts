// Owns structured logging: JSON lines (pino) with secrets redacted by key name.
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

/** Keys whose values never reach a log line, wherever they appear. */
const REDACT = [
  'password',
  'token',
  'secret',
  'authorization',
  'key',
  '*.password',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.key',
  'headers.authorization',
  '*.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  destination?: DestinationStream;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    level: opts.level ?? process.env['BULWARK_LOG_LEVEL'] ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { name: opts.name ?? 'bulwark', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination ? pino(options, opts.destination) : pino(options, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

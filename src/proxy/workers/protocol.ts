// Owns what the daemon and the proxy's worker processes say to each other (IPC messages) and the
// per-backend counter snapshot a worker reports: encoding it, and summing many into the daemon's
// view of a backend. Pure: no process or socket here.
import type { ServiceConfig } from '../../core/config/schema.js';
import type { NodeHealth } from '../../core/events.js';
import { LATENCY_BUCKETS, type Backend } from '../pool.js';

/** One finished request, as the SLIs need it: [service, backend or '', ok, status or 0, latency ms, at]. */
export type SliRow = [string, string, boolean, number, number, number];

export type ToWorker =
  | { t: 'config'; services: Record<string, ServiceConfig> }
  | { t: 'health'; service: string; node: string; to: NodeHealth }
  /** The daemon's outlier decision for a backend (ejected until, slow start from). */
  | { t: 'eject'; service: string; backend: string; until: number; upSince: number }
  | { t: 'ping'; id: number }
  | { t: 'stop' };

export type FromWorker =
  /** The worker listens for messages (anything sent before this is lost). */
  | { t: 'hello' }
  | { t: 'ready'; bound: Record<string, string> }
  | { t: 'error'; message: string; code: string | undefined; hint: string | undefined }
  | { t: 'failed'; service: string; backend: string; reason: string; detail: string }
  | { t: 'ok'; service: string; backend: string }
  | { t: 'stats'; services: Record<string, Record<string, number[]>> }
  | { t: 'sli'; rows: SliRow[] }
  | { t: 'log'; level: 'info' | 'warn'; fields: Record<string, unknown>; msg: string }
  | { t: 'pong'; id: number };

const N_LAT = LATENCY_BUCKETS.length + 1;
/** Layout: inFlight, requests, retries, connections, codes[6], latency counts[N_LAT], latency sum, latency count. */
const SNAPSHOT_LEN = 4 + 6 + N_LAT + 2;

export function snapshot(b: Backend<unknown>): number[] {
  const out = new Array<number>(SNAPSHOT_LEN);
  out[0] = b.inFlight;
  out[1] = b.requests;
  out[2] = b.retries;
  out[3] = b.connections;
  for (let i = 0; i < 6; i++) out[4 + i] = b.codes[i] ?? 0;
  for (let i = 0; i < N_LAT; i++) out[10 + i] = b.latency.counts[i] ?? 0;
  out[10 + N_LAT] = b.latency.sum;
  out[11 + N_LAT] = b.latency.count;
  return out;
}

/** Sets b's traffic counters to the sum of the snapshots (errors stay the daemon's own: it decides on failures). */
export function applySum(b: Backend<unknown>, snaps: ReadonlyArray<readonly number[]>): void {
  const sum = new Array<number>(SNAPSHOT_LEN).fill(0);
  for (const s of snaps) for (let i = 0; i < SNAPSHOT_LEN && i < s.length; i++) sum[i] = (sum[i] as number) + (s[i] ?? 0);
  b.inFlight = sum[0] as number;
  b.requests = sum[1] as number;
  b.retries = sum[2] as number;
  b.connections = sum[3] as number;
  for (let i = 0; i < 6; i++) b.codes[i] = sum[4 + i] as number;
  for (let i = 0; i < N_LAT; i++) b.latency.counts[i] = sum[10 + i] as number;
  b.latency.sum = sum[10 + N_LAT] as number;
  b.latency.count = sum[11 + N_LAT] as number;
}

/** Adds b into acc (a retired worker's last counters, kept so the sums never go back). */
export function addInto(acc: number[], s: readonly number[]): number[] {
  const out = acc.length === 0 ? new Array<number>(SNAPSHOT_LEN).fill(0) : acc;
  for (let i = 0; i < SNAPSHOT_LEN; i++) out[i] = (out[i] as number) + (i === 0 ? 0 : (s[i] ?? 0)); // in flight does not carry over
  return out;
}

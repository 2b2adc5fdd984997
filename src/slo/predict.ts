// Owns predicted availability: a service's expected availability from its parts in the configured
// topology. The Bulwark proxy is in series with the backends, which are redundant (any one healthy
// backend serves): A = A_proxy x (1 - prod(1 - A_backend)). Each part uses its measured
// availability when Bulwark has enough history of it, and the stated default otherwise. Pure.
import { parallel, serial } from './nines.js';

/** Less history than this and a part uses its default instead of its measurement. */
export const MIN_HISTORY_MS = 3_600_000;
export const DEFAULT_BACKEND_AVAILABILITY = 0.99;
export const DEFAULT_PROXY_AVAILABILITY = 0.9995;

export interface PartInput {
  name: string;
  kind: 'proxy' | 'backend';
  /** Measured availability and how much history it rests on, when there is any. */
  measured?: { availability: number; history_ms: number } | undefined;
  default: number;
}

export interface PartResult {
  name: string;
  kind: 'proxy' | 'backend';
  availability: number;
  source: 'measured' | 'default';
  history_ms: number;
}

export interface Prediction {
  availability: number;
  /** How the parts combine, for people: "proxy x (web-1 || web-2)". */
  formula: string;
  parts: PartResult[];
}

function pick(p: PartInput): PartResult {
  const m = p.measured;
  if (m && m.history_ms >= MIN_HISTORY_MS && Number.isFinite(m.availability)) {
    return { name: p.name, kind: p.kind, availability: m.availability, source: 'measured', history_ms: m.history_ms };
  }
  return { name: p.name, kind: p.kind, availability: p.default, source: 'default', history_ms: m?.history_ms ?? 0 };
}

/** Proxy in series with redundant backends. */
export function predictService(proxy: PartInput, backends: readonly PartInput[]): Prediction {
  const px = pick(proxy);
  const bs = backends.map(pick);
  const availability = serial([px.availability, parallel(bs.map((b) => b.availability))]);
  return { availability, formula: `${px.name} x (${bs.map((b) => b.name).join(' || ')})`, parts: [px, ...bs] };
}

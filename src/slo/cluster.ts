// Owns counting every instance's traffic in the SLOs (cluster mode). Each instance keeps its own
// request-SLI buckets in its own SQLite and serves them on GET /v1/internal/sli; every instance
// pulls its peers' rows each minute (a cursor per peer, bounded pages, idempotent replace) into
// its own store under "peer:<instance>:" keys, and ClusterSums adds them to its own in the sums
// the report engine reads. Time-sliced SLIs (probes, node up-time, "observed") stay each
// instance's own view: adding them across instances would count the same wall-clock time twice.
import type { Clock } from '../core/clock.js';
import { HOUR_MS, MINUTE_MS, type Counts } from './math.js';
import type { CountRow, LatencyRow } from './recorder.js';
import { peerKey, type SloRepo } from './repo.js';
import type { BucketSums, SumSource } from './sums.js';
import { COMPACT_AFTER_MS, type Range } from './windows.js';

/** How the SLO subsystem reaches its peers (given by the composition root: addresses and the shared token). */
export interface SliPeers {
  /** The other instances' names. */
  names(): string[];
  /** GET a path of a peer's API; rejects when it does not answer. */
  get(instance: string, path: string): Promise<unknown>;
}

/** Request SLIs (availability counts, latency histograms) are summed across instances; time slices are not. */
export function countsAcrossInstances(source: SumSource): boolean {
  return 'service' in source || source.key.startsWith('avail:');
}

/** The sums the engine reads in cluster mode: this instance's (through its cache) plus each peer's copied rows. */
export class ClusterSums implements BucketSums {
  readonly #local: BucketSums;
  readonly #raw: BucketSums;
  readonly #peers: () => string[];

  constructor(local: BucketSums, raw: BucketSums, peers: () => string[]) {
    this.#local = local;
    this.#raw = raw;
    this.#peers = peers;
  }

  sum(source: SumSource, range: Range, excluded: readonly Range[] = []): Counts {
    const out = { ...this.#local.sum(source, range, excluded) };
    if (!countsAcrossInstances(source)) return out;
    for (const p of this.#peers()) {
      const s = 'key' in source ? { key: peerKey(p, source.key) } : { service: peerKey(p, source.service), threshold: source.threshold };
      const c = this.#raw.sum(s, range, excluded);
      out.good += c.good;
      out.total += c.total;
    }
    return out;
  }
}

/** One page of a peer's rows covers at most this span; a pull reads at most PAGES_PER_PULL pages per peer. */
export const PULL_SPAN_MS = 6 * HOUR_MS;
export const PAGES_PER_PULL = 8;
/** Each pull re-reads this much before the cursor: the newest minutes may still have grown on the peer. */
export const PULL_OVERLAP_MS = 2 * MINUTE_MS;

export interface SliPage {
  counts: Array<CountRow & { bucket_ms: number }>;
  latency: Array<LatencyRow & { bucket_ms: number }>;
  /** The first bucket the peer has at or after the page's end (null: none), so empty spans are skipped. */
  next?: number | null;
}

function isPage(v: unknown): v is SliPage {
  const p = v as SliPage | undefined;
  return !!p && Array.isArray(p.counts) && Array.isArray(p.latency);
}

/** Pulls every peer's request-SLI rows into this instance's store. */
export class SliPuller {
  readonly #repo: SloRepo;
  readonly #peers: SliPeers;
  readonly #clock: Clock;
  readonly #cursor = new Map<string, number>();

  constructor(repo: SloRepo, peers: SliPeers, clock: Clock) {
    this.#repo = repo;
    this.#peers = peers;
    this.#clock = clock;
  }

  /** Where the next pull from a peer starts (ms). */
  cursor(instance: string): number {
    const c = this.#cursor.get(instance) ?? this.#repo.peerCursor(instance) ?? this.#clock.now() - COMPACT_AFTER_MS;
    return c - PULL_OVERLAP_MS;
  }

  /** Pulls from every peer concurrently; returns the peers that could not be read, with why (their rows arrive at a later pull). */
  async pull(): Promise<Record<string, string>> {
    const failed: Record<string, string> = {};
    await Promise.all(
      this.#peers.names().map(async (p) => {
        try {
          await this.#pullOne(p);
        } catch (err) {
          failed[p] = (err as Error).message;
        }
      }),
    );
    return failed;
  }

  async #pullOne(instance: string): Promise<void> {
    let from = this.cursor(instance);
    for (let page = 0; page < PAGES_PER_PULL; page++) {
      const end = this.#clock.now() + MINUTE_MS;
      const to = Math.min(from + PULL_SPAN_MS, end);
      const body = await this.#peers.get(instance, `/v1/internal/sli?from=${from}&to=${to}`);
      if (!isPage(body)) throw new Error(`instance ${instance} answered /v1/internal/sli without counts and latency`);
      this.#repo.replacePeerRows(instance, body.counts, body.latency);
      if (to >= end || body.next === null || (body.next !== undefined && body.next >= end)) {
        this.#cursor.set(instance, end);
        return;
      }
      this.#cursor.set(instance, to);
      from = Math.max(to, body.next ?? to);
    }
  }
}

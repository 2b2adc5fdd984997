// Owns "work that must happen once happens once" across instances: a job (a backup plan, say)
// runs only on the holder of its lease, and each scheduled task of the job records in the KV
// the last slot it started and completed (jobs/<task>), so that when the lease moves the next
// holder knows whether a slot already ran: a slot interrupted by its holder's death is run again,
// a slot that passed while no one held the lease runs once (like cron's catch-up of one, never
// once per missed slot), and a slot another live instance is still running is left to it.
// The decision is pure (decideSlot); the scheduler does the lease, KV and timer I/O.
import type { Clock, Timer } from '../core/clock.js';
import type { Coordination, LeaderLease } from './lease.js';
import { liveMembers } from './members.js';

/** What the KV holds for one scheduled task. */
export interface SlotRecord {
  /** The scheduled time (ms since epoch) of the slot. */
  slot: number;
  state: 'started' | 'done';
  /** The identity (instance) that started or completed it. */
  by: string;
  /** When the record was written (wall clock, for people). */
  at: number;
  /** true for the first record of a task: slots before it are not caught up (a new deployment runs nothing old). */
  baseline?: boolean;
}

export type SlotDecision =
  | { action: 'none' }
  | { action: 'baseline'; slot: number }
  | { action: 'run'; slot: number; why: 'due' | 'catch-up' | 'interrupted' }
  | { action: 'wait'; why: string };

/**
 * Pure: what the lease holder does about a task now.
 * `due` is the latest scheduled slot at or before now (undefined: none yet); `alive` the
 * instances with a live member key; `busy` whether this instance is running the job now.
 */
export function decideSlot(rec: SlotRecord | undefined, due: number | undefined, me: string, alive: ReadonlySet<string>, busy: boolean): SlotDecision {
  if (busy) return { action: 'none' };
  if (!rec) return due === undefined ? { action: 'none' } : { action: 'baseline', slot: due };
  if (rec.state === 'started') {
    if (rec.by !== me && alive.has(rec.by)) return { action: 'wait', why: `${rec.by} is still running the slot of ${new Date(rec.slot).toISOString()}` };
    // Its runner died (or this instance restarted) before completing it: run it again, or the
    // newer slot when one is due since (one run covers both: catch-up of one).
    if (due !== undefined && due > rec.slot) return { action: 'run', slot: due, why: 'catch-up' };
    return { action: 'run', slot: rec.slot, why: 'interrupted' };
  }
  if (due === undefined || due <= rec.slot) return { action: 'none' };
  return { action: 'run', slot: due, why: 'due' };
}

export function parseSlotRecord(text: string | undefined): SlotRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as SlotRecord;
    return typeof v.slot === 'number' && (v.state === 'started' || v.state === 'done') && typeof v.by === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** One scheduled task of a job. */
export interface OnceTask {
  /** Its record key, relative: "jobs/plan/app/backup". */
  readonly key: string;
  /** The latest scheduled slot at or before `now`, or undefined. */
  latest(now: number): number | undefined;
  /** The first scheduled slot after `now`. */
  next(now: number): number;
  /** Whether this instance is running the job now (one run per job at a time). */
  busy(): boolean;
  /** Runs the slot. A rejection still completes the slot (it ran and failed: the failure is recorded by the job itself). */
  run(slot: number, why: string): Promise<void>;
}

export interface OnceSchedulerOptions {
  coordination: Coordination;
  /** The job's lease: "job/plan/app". */
  leaseName: string;
  clock: Clock;
  tasks: OnceTask[];
  /** Whether this instance may run the job at all (a plan pinned to another instance: false); asked at every pass. */
  eligible: boolean | (() => boolean);
  /** How often a non-holder tries to take the lease, and a holder looks for due slots. */
  pollMs?: number;
  onEvent?: (e: { kind: 'baseline' | 'run' | 'wait' | 'error' | 'held' | 'lost'; task?: string; slot?: number; message: string }) => void;
}

/** Runs a job's tasks on the lease holder only. */
export class OnceScheduler {
  readonly #o: OnceSchedulerOptions;
  readonly #lease: LeaderLease;
  readonly #pollMs: number;
  #timer: Timer | undefined;
  #running = false;
  #pass: Promise<void> | undefined;
  #inflight = new Set<Promise<void>>();
  #held = false;
  /** Tasks this scheduler is running now (busy even if the task's own flag lags). */
  #runningTasks = new Set<string>();

  constructor(opts: OnceSchedulerOptions) {
    this.#o = opts;
    this.#lease = opts.coordination.lease(opts.leaseName);
    this.#pollMs = opts.pollMs ?? 1000;
  }

  /** True while this instance holds the job's lease. */
  get holder(): boolean {
    return this.#lease.isHeld();
  }

  start(): void {
    this.#running = true;
    this.#wake(0);
  }

  #wake(delayMs: number): void {
    if (!this.#running) return;
    this.#timer?.cancel();
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#pass = this.pass().finally(() => {
        this.#pass = undefined;
        const now = this.#o.clock.now();
        const soonest = Math.min(...this.#o.tasks.map((t) => t.next(now)));
        this.#wake(Math.max(0, Math.min(this.#pollMs, soonest - now)));
      });
    }, delayMs);
  }

  /** One pass: take (or keep) the lease, then act on each task. Never throws. */
  async pass(): Promise<void> {
    const { coordination, tasks, clock } = this.#o;
    const me = coordination.identity;
    try {
      const eligible = typeof this.#o.eligible === 'function' ? this.#o.eligible() : this.#o.eligible;
      if (!eligible) {
        if (this.#lease.isHeld()) await this.#lease.release();
        return;
      }
      const held = await this.#lease.acquire();
      if (held !== this.#held) {
        this.#held = held;
        this.#o.onEvent?.({ kind: held ? 'held' : 'lost', message: held ? `${me} holds ${this.#o.leaseName}` : `${me} no longer holds ${this.#o.leaseName}` });
      }
      if (!held) return;
      let alive: Set<string> | undefined;
      for (const t of tasks) {
        const now = clock.now();
        const rec = parseSlotRecord(await coordination.kv.get(t.key));
        if (rec?.state === 'started' && rec.by !== me && alive === undefined) alive = new Set((await liveMembers(coordination.kv)).keys());
        const d = decideSlot(rec, t.latest(now), me, alive ?? new Set(), t.busy() || this.#runningTasks.has(t.key));
        if (d.action === 'baseline') {
          await this.#write(t.key, { slot: d.slot, state: 'done', by: me, at: now, baseline: true });
          this.#o.onEvent?.({ kind: 'baseline', task: t.key, slot: d.slot, message: `first record of ${t.key}: slots up to ${new Date(d.slot).toISOString()} are not caught up` });
        } else if (d.action === 'wait') {
          this.#o.onEvent?.({ kind: 'wait', task: t.key, message: d.why });
        } else if (d.action === 'run') {
          // Started is written under the lease: a former holder cannot claim the slot any more.
          if (!(await this.#write(t.key, { slot: d.slot, state: 'started', by: me, at: now }))) continue;
          this.#o.onEvent?.({ kind: 'run', task: t.key, slot: d.slot, message: `${me} runs ${t.key} for ${new Date(d.slot).toISOString()} (${d.why})` });
          this.#runningTasks.add(t.key);
          const job = t
            .run(d.slot, d.why)
            .catch(() => undefined)
            .then(() => this.#complete(t.key, d.slot))
            .catch((err: unknown) => this.#o.onEvent?.({ kind: 'error', task: t.key, message: `recording ${t.key} done failed: ${(err as Error).message}` }))
            .finally(() => this.#runningTasks.delete(t.key));
          this.#inflight.add(job);
          void job.finally(() => this.#inflight.delete(job));
        }
      }
    } catch (err) {
      this.#o.onEvent?.({ kind: 'error', message: `${this.#o.leaseName}: ${(err as Error).message}` });
    }
  }

  async #write(key: string, rec: SlotRecord): Promise<boolean> {
    return this.#o.coordination.kv.putIfHolder(this.#lease, key, JSON.stringify(rec));
  }

  /**
   * Records the slot done. Under the lease when still held; else only if the record still says
   * this instance started this slot (no one took it over), so a finished run is never repeated.
   */
  async #complete(key: string, slot: number): Promise<void> {
    const { coordination, clock } = this.#o;
    const me = coordination.identity;
    const done: SlotRecord = { slot, state: 'done', by: me, at: clock.now() };
    if (await this.#write(key, done)) return;
    const cur = parseSlotRecord(await coordination.kv.get(key));
    if (cur?.state === 'started' && cur.by === me && cur.slot === slot) await coordination.kv.put(key, JSON.stringify(done));
  }

  /** Stops scheduling, lets a running slot finish and record itself, and gives the lease up. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.cancel();
    await this.#pass;
    await Promise.allSettled([...this.#inflight]);
    await this.#lease.release();
  }
}

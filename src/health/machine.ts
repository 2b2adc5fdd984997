// Owns the pure health state machine of one node: pull probes with rise/fall hysteresis, push
// heartbeats with a TTL, and the combined state (down if either source says down). No I/O and no
// timers: callers feed results and the current time, and get back a transition or undefined.
import type { NodeHealth } from '../core/events.js';

export interface MachineOptions {
  /** Whether pull probes are configured for this node. */
  readonly pull: boolean;
  readonly rise: number;
  readonly fall: number;
  /** Heartbeat TTL in ms, or undefined when the node does not push heartbeats. */
  readonly heartbeatTtl: number | undefined;
}

export interface Transition {
  readonly from: NodeHealth;
  readonly to: NodeHealth;
  readonly reason: string;
  readonly at: number;
  /** For a transition to down: when the evidence that led to it started (first failed probe, or the heartbeat deadline). */
  readonly failingSince: number | undefined;
}

export interface MachineSnapshot {
  state: NodeHealth;
  since: number;
  pull: NodeHealth | 'off';
  heartbeat: NodeHealth | 'off';
  ok_streak: number;
  fail_streak: number;
  last_reason: string;
  last_heartbeat: number | undefined;
}

export class NodeMachine {
  #opts: MachineOptions;
  #pull: NodeHealth = 'unknown';
  #ok = 0;
  #fail = 0;
  #firstFailAt: number | undefined;
  #hb: NodeHealth = 'unknown';
  /** Reference time for the heartbeat deadline: the last beat, or when heartbeats were configured. */
  #hbRef: number;
  #lastBeat: number | undefined;
  #state: NodeHealth = 'unknown';
  #since: number;
  #lastReason = 'not checked yet';

  constructor(opts: MachineOptions, now: number) {
    this.#opts = opts;
    this.#hbRef = now;
    this.#since = now;
  }

  get state(): NodeHealth {
    return this.#state;
  }

  get options(): MachineOptions {
    return this.#opts;
  }

  /** True while probe results disagree with the pull state (a transition may be coming): probe faster. */
  get changing(): boolean {
    return (this.#ok > 0 && this.#pull !== 'up') || (this.#fail > 0 && this.#pull !== 'down');
  }

  /** When the heartbeat becomes late, or undefined when heartbeats are off or already down. */
  heartbeatDeadline(): number | undefined {
    if (this.#opts.heartbeatTtl === undefined || this.#hb === 'down') return undefined;
    return this.#hbRef + this.#opts.heartbeatTtl;
  }

  /** Applies new options (config reload) keeping the observed state and streaks. */
  configure(opts: MachineOptions, now: number): Transition | undefined {
    const hadHb = this.#opts.heartbeatTtl !== undefined;
    this.#opts = opts;
    if (!opts.pull) {
      this.#pull = 'unknown';
      this.#ok = 0;
      this.#fail = 0;
    }
    if (opts.heartbeatTtl === undefined) this.#hb = 'unknown';
    else if (!hadHb) this.#hbRef = now;
    return this.#recompute(now, 'configuration changed', undefined);
  }

  /** Feeds one probe result. */
  probe(ok: boolean, detail: string, now: number): Transition | undefined {
    if (!this.#opts.pull) return undefined;
    if (ok) {
      this.#ok++;
      this.#fail = 0;
      this.#firstFailAt = undefined;
      if (this.#pull !== 'up' && this.#ok >= this.#opts.rise) {
        this.#pull = 'up';
        return this.#recompute(now, `${this.#opts.rise} consecutive probes passed (${detail})`, undefined);
      }
    } else {
      if (this.#fail === 0) this.#firstFailAt = now;
      this.#fail++;
      this.#ok = 0;
      this.#lastReason = detail;
      if (this.#pull !== 'down' && this.#fail >= this.#opts.fall) {
        this.#pull = 'down';
        return this.#recompute(now, `${this.#opts.fall} consecutive probes failed (${detail})`, this.#firstFailAt);
      }
    }
    return undefined;
  }

  /** Feeds one pushed heartbeat ('down' marks the node down at once). */
  heartbeat(status: 'up' | 'down', detail: string, now: number): Transition | undefined {
    if (this.#opts.heartbeatTtl === undefined) return undefined;
    this.#lastBeat = now;
    if (status === 'up') {
      this.#hbRef = now;
      if (this.#hb !== 'up') {
        this.#hb = 'up';
        return this.#recompute(now, `heartbeat received${detail ? ` (${detail})` : ''}`, undefined);
      }
      return undefined;
    }
    if (this.#hb !== 'down') {
      this.#hb = 'down';
      return this.#recompute(now, `heartbeat reported down${detail ? ` (${detail})` : ''}`, now);
    }
    return undefined;
  }

  /** Checks the heartbeat deadline at time now. */
  tick(now: number): Transition | undefined {
    const deadline = this.heartbeatDeadline();
    if (deadline === undefined || now <= deadline) return undefined;
    this.#hb = 'down';
    const ttl = this.#opts.heartbeatTtl as number;
    const reason = this.#lastBeat === undefined ? `no heartbeat within the ${ttl} ms TTL` : `heartbeat late by ${now - this.#hbRef} ms (TTL ${ttl} ms)`;
    return this.#recompute(now, reason, deadline);
  }

  snapshot(): MachineSnapshot {
    return {
      state: this.#state,
      since: this.#since,
      pull: this.#opts.pull ? this.#pull : 'off',
      heartbeat: this.#opts.heartbeatTtl === undefined ? 'off' : this.#hb,
      ok_streak: this.#ok,
      fail_streak: this.#fail,
      last_reason: this.#lastReason,
      last_heartbeat: this.#lastBeat,
    };
  }

  #recompute(now: number, reason: string, failingSince: number | undefined): Transition | undefined {
    const sources: NodeHealth[] = [];
    if (this.#opts.pull) sources.push(this.#pull);
    if (this.#opts.heartbeatTtl !== undefined) sources.push(this.#hb);
    let next: NodeHealth;
    if (sources.length === 0) next = 'unknown';
    else if (sources.includes('down')) next = 'down';
    else if (sources.every((s) => s === 'up')) next = 'up';
    else next = 'unknown';
    if (next === this.#state) return undefined;
    this.#lastReason = reason;
    const from = this.#state;
    this.#state = next;
    this.#since = now;
    return { from, to: next, reason, at: now, failingSince: next === 'down' ? (failingSince ?? now) : undefined };
  }
}

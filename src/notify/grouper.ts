// Owns grouping and repeating: incidents with the same key are gathered for group_wait, then at
// most one message per group_interval summarises what happened meanwhile (a flapping node sends
// one message, not one per flap); an incident that ends where the last message left it sends
// nothing; a resolution is sent only when its firing was; a still-firing incident is sent again
// after repeat_interval. Time comes from the Clock, so tests drive it with FakeClock.
import type { Clock, Timer } from '../core/clock.js';
import type { Incident } from './incidents.js';

export interface GroupTimes {
  group_wait: number;
  group_interval: number;
  repeat_interval: number;
}

/** One message about one incident key. */
export interface Notification {
  /** The newest incident of the group: its state is what the receiver should believe now. */
  incident: Incident;
  /** Incidents gathered into this message (1 unless it flapped). */
  count: number;
  /** Kinds in the order they happened, e.g. [node.down, node.up, node.down]. */
  kinds: string[];
  /** When the first incident of this group happened. */
  first_at: number;
  /** A reminder of a still-firing incident (repeat_interval), not news. */
  repeat: boolean;
}

interface Group {
  pending: Incident[];
  timer: Timer | undefined;
  repeatTimer: Timer | undefined;
  lastSentAt: number | undefined;
  lastSent: Incident | undefined;
}

export class Grouper {
  readonly #clock: Clock;
  #times: GroupTimes;
  readonly #send: (n: Notification) => void;
  readonly #groups = new Map<string, Group>();

  constructor(clock: Clock, times: GroupTimes, send: (n: Notification) => void) {
    this.#clock = clock;
    this.#times = times;
    this.#send = send;
  }

  set times(t: GroupTimes) {
    this.#times = t;
  }

  add(i: Incident): void {
    let g = this.#groups.get(i.key);
    if (!g) {
      g = { pending: [], timer: undefined, repeatTimer: undefined, lastSentAt: undefined, lastSent: undefined };
      this.#groups.set(i.key, g);
    }
    // A resolution of something never told (and not waiting to be told) is news to no one.
    if (i.state === 'resolved' && g.lastSent?.state !== 'firing' && !g.pending.some((p) => p.state === 'firing')) return;
    g.pending.push(i);
    if (g.timer) return;
    const now = this.#clock.now();
    const delay = g.lastSentAt === undefined ? this.#times.group_wait : Math.max(this.#times.group_wait, g.lastSentAt + this.#times.group_interval - now);
    const group = g;
    g.timer = this.#clock.setTimeout(() => this.#flush(i.key, group), delay);
  }

  #flush(key: string, g: Group): void {
    g.timer = undefined;
    const batch = g.pending.splice(0);
    const last = batch[batch.length - 1];
    if (!last) return;
    const unchanged = g.lastSent !== undefined && g.lastSent.state === last.state && g.lastSent.kind === last.kind && !last.one_shot;
    const neverFired = last.state === 'resolved' && g.lastSent?.state !== 'firing';
    if (unchanged || neverFired) {
      if (neverFired && !g.repeatTimer) this.#groups.delete(key);
      return;
    }
    this.#deliver(key, g, { incident: last, count: batch.length, kinds: batch.map((b) => b.kind), first_at: (batch[0] as Incident).at, repeat: false });
  }

  #deliver(key: string, g: Group, n: Notification): void {
    g.lastSentAt = this.#clock.now();
    g.lastSent = n.incident;
    g.repeatTimer?.cancel();
    g.repeatTimer = undefined;
    if (n.incident.state === 'firing' && !n.incident.one_shot) {
      g.repeatTimer = this.#clock.setTimeout(() => {
        g.repeatTimer = undefined;
        if (g.lastSent?.state === 'firing' && g.pending.length === 0) this.#deliver(key, g, { ...n, count: 1, kinds: [n.incident.kind], repeat: true });
      }, this.#times.repeat_interval);
    }
    if (n.incident.state === 'resolved' && g.pending.length === 0) this.#groups.delete(key);
    this.#send(n);
  }

  /** Forgets a key: what is pending is not sent, no reminder follows (another incident supersedes it). */
  forget(key: string): void {
    const g = this.#groups.get(key);
    if (!g) return;
    g.timer?.cancel();
    g.repeatTimer?.cancel();
    this.#groups.delete(key);
  }

  /** Incident keys currently firing (last message sent was a firing one), for status. */
  firing(): Incident[] {
    return [...this.#groups.values()].flatMap((g) => (g.lastSent?.state === 'firing' && !g.lastSent.one_shot ? [g.lastSent] : []));
  }

  stop(): void {
    for (const g of this.#groups.values()) {
      g.timer?.cancel();
      g.repeatTimer?.cancel();
    }
    this.#groups.clear();
  }
}

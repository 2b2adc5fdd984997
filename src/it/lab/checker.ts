// Owns the Jepsen-style verdict on a write history (pure: no I/O). Input: every write the
// writers (writers.ts) attempted, each with its start time, its end time (ack or error) and, when
// acknowledged, the node that acknowledged it; plus the rows found on the final primary at the end.
//
// What it reports, and the exact definitions:
//
// - lost: writes that were acknowledged (ok) but whose (client, seq) row is absent from the
//   final primary. In synchronous mode this must be 0. Writes that failed or timed out are
//   indeterminate: present or absent are both correct; the number present is reported apart.
//   Rows on the final primary that no writer ever attempted are reported as `unknown` (a bug in
//   the harness or the table was not empty).
//
// - downtime: the acknowledgements of all clients, sorted by ack time, form a sequence of gaps.
//   With a fault time F: the longest gap whose end is after F (a gap that closed before the fault
//   is normal operation). It runs from the last ack before it to the first ack after it;
//   `recoveredAfterMs` is that first ack minus F. If nothing was acknowledged after F, the gap
//   runs to the end of the history and `recovered` is false (the figure is then a lower bound).
//   Without F: the longest gap of the whole history.
//
// - split brain: two nodes taking writes in the same period. A node acknowledged a write at
//   some instant inside [start, ack] of that write; only the order of instants that the
//   intervals force is trusted. Nodes are ranked by their first acknowledgement ("became
//   primary"). Definition: nodes A != B, B's first ack later than A's, and writes a1, a2
//   acknowledged by A and b acknowledged by B with
//       a1.ack < b.start      (B took b after A had taken a1: B's reign came after A's)
//       b.ack  < a2.start     (A took a2 after B had taken b)
//   i.e. A acknowledged a write that began after B, which became primary later than A, had
//   acknowledged one. The count is the number of such writes a2 (writes a superseded node
//   acknowledged; each counted once, against the first newer node that proves it). A write
//   acknowledged late (started before B's first such ack) is never counted: it may have
//   committed before B took over. Computation, per pair (A, B): fA = the earliest ack on A;
//   mAB = the earliest ack among B's writes that started after fA; every A write that started
//   after mAB is a violation.
//   Limitation, by design: a legitimate failback (A, then B, then A again after a second
//   failover) matches the same pattern, so give the checker histories with one failover each.
export interface WriteRecord {
  client: number;
  seq: number;
  /** ms since the epoch (fractional) when the write was sent. */
  start: number;
  /** ms since the epoch when it was acknowledged or failed. */
  end: number;
  ok: boolean;
  /** The node that acknowledged it (its identity as the server reported it), when ok. */
  node?: string | undefined;
  /** The address the client sent it to. */
  target?: string | undefined;
  error?: string | undefined;
}

export interface RowKey {
  client: number;
  seq: number;
}

export interface CheckInput {
  writes: readonly WriteRecord[];
  /** The (client, seq) rows on the final primary. */
  finalRows: readonly RowKey[];
  /** When the fault was injected (ms since the epoch), for the downtime. */
  faultAt?: number | undefined;
  /** When the history ends (default: the last write's end). */
  endedAt?: number | undefined;
}

export interface Gap {
  ms: number;
  /** The ack before the gap (or the fault / the history's start). */
  from: number;
  /** The ack that ended it (or the history's end when not recovered). */
  to: number;
  recovered: boolean;
  /** First ack after the fault minus the fault time (only with a fault time, when recovered). */
  recoveredAfterMs?: number;
}

export interface SplitBrainWitness {
  /** The superseded node that kept acknowledging. */
  node: string;
  /** The node that took over. */
  newer: string;
  /** A's first ack, B's earliest ack after it, and the offending write on A. */
  firstAckOnNode: number;
  newerAck: number;
  write: WriteRecord;
}

export interface NodeSummary {
  node: string;
  acks: number;
  firstAck: number;
  lastAck: number;
}

export interface CheckReport {
  attempted: number;
  acked: number;
  failed: number;
  lost: WriteRecord[];
  /** Failed (indeterminate) writes that are nevertheless on the final primary. */
  failedButPresent: number;
  unknown: RowKey[];
  downtime: Gap | undefined;
  splitBrain: { count: number; witnesses: SplitBrainWitness[] };
  nodes: NodeSummary[];
  /** True when nothing acknowledged was lost, no unknown rows, no split brain. */
  ok: boolean;
}

const key = (r: RowKey): string => `${r.client}/${r.seq}`;

export function lostWrites(writes: readonly WriteRecord[], finalRows: readonly RowKey[]): { lost: WriteRecord[]; failedButPresent: number; unknown: RowKey[] } {
  const present = new Set(finalRows.map(key));
  const attempted = new Set(writes.map(key));
  return {
    lost: writes.filter((w) => w.ok && !present.has(key(w))),
    failedButPresent: writes.filter((w) => !w.ok && present.has(key(w))).length,
    unknown: finalRows.filter((r) => !attempted.has(key(r))),
  };
}

export function longestGap(writes: readonly WriteRecord[], opts: { faultAt?: number | undefined; endedAt?: number | undefined } = {}): Gap | undefined {
  const acks = writes.filter((w) => w.ok).map((w) => w.end).sort((a, b) => a - b);
  const end = opts.endedAt ?? Math.max(...writes.map((w) => w.end));
  const f = opts.faultAt;
  if (acks.length === 0) {
    const from = f ?? Math.min(...writes.map((w) => w.start));
    return Number.isFinite(from) && Number.isFinite(end) ? { ms: end - from, from, to: end, recovered: false } : undefined;
  }
  if (f !== undefined && (acks[acks.length - 1] as number) <= f) {
    const from = acks[acks.length - 1] as number;
    return { ms: end - from, from, to: end, recovered: false };
  }
  // no ack before the fault: the gap starts at the fault
  const points = f !== undefined && (acks[0] as number) > f ? [f, ...acks] : acks;
  let best: Gap | undefined;
  for (let i = 1; i < points.length; i++) {
    const from = points[i - 1] as number;
    const to = points[i] as number;
    if (f !== undefined && to <= f) continue;
    if (!best || to - from > best.ms) best = { ms: to - from, from, to, recovered: true };
  }
  if (f !== undefined && best) best.recoveredAfterMs = (acks.find((a) => a > f) as number) - f;
  return best;
}

export function splitBrain(writes: readonly WriteRecord[], maxWitnesses = 5): { count: number; witnesses: SplitBrainWitness[] } {
  const byNode = new Map<string, WriteRecord[]>();
  for (const w of writes) {
    if (!w.ok || w.node === undefined) continue;
    const list = byNode.get(w.node) ?? [];
    list.push(w);
    byNode.set(w.node, list);
  }
  const offending = new Map<WriteRecord, SplitBrainWitness>();
  const first = new Map([...byNode].map(([n, ws]) => [n, Math.min(...ws.map((w) => w.end))]));
  for (const [a, aw] of byNode) {
    const fA = first.get(a) as number;
    for (const [b, bw] of byNode) {
      if (a === b || (first.get(b) as number) <= fA) continue;
      const after = bw.filter((w) => w.start > fA).map((w) => w.end);
      if (after.length === 0) continue;
      const mAB = Math.min(...after);
      for (const w of aw) {
        if (w.start > mAB && !offending.has(w)) offending.set(w, { node: a, newer: b, firstAckOnNode: fA, newerAck: mAB, write: w });
      }
    }
  }
  const witnesses = [...offending.values()].sort((x, y) => x.write.start - y.write.start);
  return { count: witnesses.length, witnesses: witnesses.slice(0, maxWitnesses) };
}

export function nodeSummary(writes: readonly WriteRecord[]): NodeSummary[] {
  const m = new Map<string, NodeSummary>();
  for (const w of writes) {
    if (!w.ok || w.node === undefined) continue;
    const s = m.get(w.node) ?? { node: w.node, acks: 0, firstAck: Infinity, lastAck: -Infinity };
    s.acks++;
    s.firstAck = Math.min(s.firstAck, w.end);
    s.lastAck = Math.max(s.lastAck, w.end);
    m.set(w.node, s);
  }
  return [...m.values()].sort((a, b) => a.firstAck - b.firstAck);
}

export function check(input: CheckInput): CheckReport {
  const { lost, failedButPresent, unknown } = lostWrites(input.writes, input.finalRows);
  const sb = splitBrain(input.writes);
  const acked = input.writes.filter((w) => w.ok).length;
  return {
    attempted: input.writes.length,
    acked,
    failed: input.writes.length - acked,
    lost,
    failedButPresent,
    unknown,
    downtime: longestGap(input.writes, { faultAt: input.faultAt, endedAt: input.endedAt }),
    splitBrain: sb,
    nodes: nodeSummary(input.writes),
    ok: lost.length === 0 && unknown.length === 0 && sb.count === 0,
  };
}

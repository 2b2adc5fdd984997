// Owns the one view of the cluster: joins the membership (who is up or gone in etcd) with each
// peer's own local status and events, fetched over the peers' APIs concurrently with the shared
// token and a short timeout (?scope=local, so a peer never fans out again). A peer that does not
// answer is marked unreachable with a BULWARK_CLUSTER_REMOTE error and never hides the others.
import { BulwarkError } from '../core/errors.js';
import type { MemberView } from '../coord/index.js';

/** How long a peer gets to answer a status or events request. */
export const PEER_TIMEOUT_MS = 1000;

export interface RemoteError {
  code: string;
  message: string;
  hint?: string;
}

export interface PeerAnswer {
  ok: boolean;
  body?: unknown;
  error?: RemoteError;
}

/** Fetches one path of a peer's API; never throws (a failure is returned as BULWARK_CLUSTER_REMOTE). */
export async function fetchPeer(api: string, path: string, token: string | undefined, timeoutMs = PEER_TIMEOUT_MS): Promise<PeerAnswer> {
  const url = `http://${api}${path}`;
  try {
    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json().catch(() => undefined)) as unknown;
    if (!res.ok) {
      const e = (body as { error?: { message?: string } } | undefined)?.error;
      return { ok: false, error: remote(api, `answered ${res.status}${e?.message ? `: ${e.message}` : ''}`, res.status === 401 ? 'every instance must use the same api.token_file / api.token_env secret' : undefined) };
    }
    return { ok: true, body };
  } catch (err) {
    const e = err as Error;
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.cause instanceof Error ? e.cause.message : e.message;
    return { ok: false, error: remote(api, why) };
  }
}

function remote(api: string, why: string, hint?: string): RemoteError {
  const e = new BulwarkError('BULWARK_CLUSTER_REMOTE', `instance at ${api} is unreachable: ${why}`, {
    hint: hint ?? 'check that the instance runs (bulwark up --instance NAME) and that its api address is reachable from here',
  });
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}

/** A member as /v1/status shows it: its membership state, whether its API answered, and its record. */
export interface MemberRow {
  name: string;
  api: string;
  zone: string | null;
  /** up / gone / unknown, as etcd says. */
  state: string;
  /** Its API answered now (true), did not (false); the instance itself is always reachable. */
  reachable: boolean;
  self: boolean;
  version: string | null;
  started_at: number | null;
  pid: number | null;
  health: { subsystems: number; errors: string[] } | null;
  error?: RemoteError;
}

export interface InstanceView {
  state: 'up' | 'unreachable';
  status?: unknown;
  error?: RemoteError;
}

/**
 * Fetches every other member's local status concurrently. Every configured instance is asked,
 * also one etcd calls gone (it may be up but cut off from etcd): what it answers is shown.
 */
export async function gatherPeers(
  self: string,
  members: readonly MemberView[],
  fetchOne: (api: string, name: string) => Promise<PeerAnswer>,
): Promise<{ rows: MemberRow[]; instances: Record<string, InstanceView> }> {
  const answers = await Promise.all(members.map((m) => (m.name === self ? Promise.resolve(undefined) : fetchOne(m.api, m.name))));
  const rows: MemberRow[] = [];
  const instances: Record<string, InstanceView> = {};
  members.forEach((m, i) => {
    const a = answers[i];
    const isSelf = m.name === self;
    const reachable = isSelf || a?.ok === true;
    rows.push({
      name: m.name,
      api: m.api,
      zone: m.zone ?? null,
      state: m.state,
      reachable,
      self: isSelf,
      version: m.record?.version ?? null,
      started_at: m.record?.started_at ?? null,
      pid: m.record?.pid ?? null,
      health: m.record?.health ?? null,
      ...(a && !a.ok && a.error ? { error: a.error } : {}),
    });
    if (!isSelf) instances[m.name] = a?.ok ? { state: 'up', status: a.body } : { state: 'unreachable', ...(a?.error ? { error: a.error } : {}) };
  });
  return { rows, instances };
}

/** Resolves with p, or with fallback() after ms (p keeps running; its result is dropped). */
export async function within<T>(p: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Merges the events of several instances, newest first, at most `limit`, each tagged with its instance. Pure. */
export function mergeEvents<E extends { at: number }>(lists: ReadonlyArray<{ instance: string; events: readonly E[] }>, limit: number): Array<E & { instance: string }> {
  return lists
    .flatMap((l) => l.events.map((e) => ({ ...e, instance: l.instance })))
    .sort((a, b) => b.at - a.at || a.instance.localeCompare(b.instance))
    .slice(0, limit);
}

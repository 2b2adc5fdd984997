// Owns the retry policy of an HTTP attempt that failed before a response: pure, so the rules are
// tested apart from sockets. A request that never reached the backend is always safe to send
// again; one that may have been sent is retried only when its method is idempotent and none of its
// body was consumed. A reset on a reused keep-alive connection (the backend closed it as we reused
// it) may go once more to the same backend when no other one is left.

/** Errors that mean no byte of the request reached the backend. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ECONNECTTIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

export interface AttemptFailure {
  /** The attempt had a connected socket (bytes may have been sent). */
  readonly sent: boolean;
  readonly bodyStarted: boolean;
  readonly idempotent: boolean;
  readonly code: string;
  /** Attempts made so far, this one included. */
  readonly attempts: number;
  readonly retries: number;
}

export type RetryDecision = 'retry' | 'retry-or-same' | 'fail';

export function retryDecision(f: AttemptFailure): RetryDecision {
  const neverSent = (!f.sent || NEVER_SENT.has(f.code)) && !f.bodyStarted;
  const retryable = neverSent || (f.idempotent && !f.bodyStarted);
  if (!retryable || f.attempts > f.retries) return 'fail';
  return f.code === 'ECONNRESET' ? 'retry-or-same' : 'retry';
}

/** The status a client gets when the last attempt failed with code. */
export function failureStatus(code: string): number {
  return code === 'ERESPONSETIMEOUT' ? 504 : 502;
}

// Owns partitions as packet filters inside the host namespaces: from the set of blocked
// (from -> to) address pairs, each host gets an input rule dropping packets from the addresses it
// must not hear. A drop at the receiver (never a reject, never at the sender) is what a cut
// network does: the sender sees silence, not an error, and a one-way block stays one-way.
// nftables when available (`table inet bwlab`, replaced atomically), iptables otherwise.
import { hasCommand, run } from './netns.js';

export type FirewallKind = 'nft' | 'iptables';

export function defaultFirewall(): FirewallKind {
  const forced = process.env['BULWARK_LAB_FIREWALL'];
  if (forced === 'nft' || forced === 'iptables') return forced;
  if (hasCommand('nft')) return 'nft';
  if (hasCommand('iptables')) return 'iptables';
  throw new Error('neither nft nor iptables is installed: run scripts/install-deps.sh (apt-get install nftables)');
}

/** A directed block: packets from `from` to `to` are dropped (at `to`). */
export interface Block {
  from: string;
  to: string;
}

/** For one host address: the source addresses it must drop. Pure. */
export function dropsFor(address: string, blocks: readonly Block[]): string[] {
  return [...new Set(blocks.filter((b) => b.to === address && b.from !== address).map((b) => b.from))].sort();
}

/** The nft script that replaces the lab table with drops of `sources` (an empty list removes it). Pure. */
export function nftScript(sources: readonly string[]): string {
  const lines = ['table inet bwlab', 'delete table inet bwlab'];
  if (sources.length > 0) {
    lines.push(
      'table inet bwlab {',
      '  chain input {',
      '    type filter hook input priority 0; policy accept;',
      `    ip saddr { ${sources.join(', ')} } drop`,
      '  }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

/** Applies the drops inside namespace `ns`. */
export function applyDrops(kind: FirewallKind, ns: string, sources: readonly string[]): void {
  if (kind === 'nft') {
    run('/usr/sbin/ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: nftScript(sources) });
    return;
  }
  run('/usr/sbin/ip', ['netns', 'exec', ns, 'iptables', '-w', '-F', 'INPUT']);
  for (const s of sources) run('/usr/sbin/ip', ['netns', 'exec', ns, 'iptables', '-w', '-A', 'INPUT', '-s', `${s}/32`, '-j', 'DROP']);
}

/** The rules in force inside `ns`, as text (for logs and tests). */
export function listRules(kind: FirewallKind, ns: string): string {
  if (kind === 'nft') return run('/usr/sbin/ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']);
  return run('/usr/sbin/ip', ['netns', 'exec', ns, 'iptables', '-w', '-S', 'INPUT']);
}

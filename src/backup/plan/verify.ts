// Owns read-data verification of plan targets as a deterministic rotation: each pack has a fixed
// slot (from its id, a SHA-256, so slots are uniform and do not move when packs come and go);
// verification number k re-reads the packs of slot k mod N. N runs cover every pack, so with N
// chosen from the period and the schedule, every pack is re-read within the period. Selection is
// pure; the read itself re-hashes each pack and decrypts every blob, like `check --read-data`.
// Damage found is marked in the repository (repair packs' damage marks): the next plan run stores
// those blobs again from the source instead of deduplicating onto them, and until then the
// structure check says the snapshots referencing them are not whole.
import { filePath } from '../backend.js';
import { check, type Repository } from '../engine.js';
import { sha256 } from '../crypto.js';
import { FLAG_DAMAGED, type BlobEntry } from '../format.js';
import { damageMarks, entryKey, readAllIndexFiles, writeDamageMarks } from '../repoindex.js';

/** The slot of a pack among `slots`. */
export function packSlot(packId: string, slots: number): number {
  return Number.parseInt(packId.slice(0, 8), 16) % Math.max(1, slots);
}

/** How many runs the rotation spans: from a share per run, or from a period and the run interval. */
export function rotationSlots(opts: { readDataShare?: number | undefined; periodMs?: number | undefined; intervalMs?: number | undefined }): number {
  if (opts.readDataShare !== undefined && opts.readDataShare > 0) return Math.max(1, Math.ceil(1 / opts.readDataShare - 1e-9));
  if (opts.periodMs !== undefined && opts.intervalMs !== undefined && opts.intervalMs > 0) return Math.max(1, Math.floor(opts.periodMs / opts.intervalMs));
  return 1;
}

/** The packs verification number `run` reads. */
export function packsForRun(packIds: readonly string[], slots: number, run: number): string[] {
  const slot = run % Math.max(1, slots);
  return packIds.filter((id) => packSlot(id, slots) === slot).sort();
}

export interface VerifyResult {
  ok: boolean;
  slot: number;
  slots: number;
  packsTotal: number;
  packsRead: number;
  bytesRead: number;
  /** Structure problems (check without data) and damaged packs. */
  errors: string[];
  damagedPacks: string[];
}

/** Structure check of the whole repository, then a read of this run's share of packs. */
export async function verifyRepository(repo: Repository, slots: number, run: number): Promise<VerifyResult> {
  const structure = await check(repo, {});
  const errors = [...structure.errors];
  const packs = new Map<string, { size: number; entries: BlobEntry[] }>();
  const { files } = await readAllIndexFiles(repo); // damaged index files: reported by the structure check
  const marks = damageMarks(files);
  for (const f of files) for (const p of f.packs) if (!packs.has(p.id)) packs.set(p.id, { size: p.size, entries: p.entries.filter((e) => !(e.flags & FLAG_DAMAGED) && !marks.has(entryKey(p.id, e))) });
  const bad = new Map<string, { size: number; entries: BlobEntry[] }>();
  const chosen = packsForRun([...packs.keys()], slots, run);
  const damaged: string[] = [];
  let bytesRead = 0;
  for (const id of chosen) {
    const p = packs.get(id) as { size: number; entries: BlobEntry[] };
    const file = filePath({ type: 'data', name: id });
    const problems: string[] = [];
    let raw: Buffer | undefined;
    try {
      raw = await repo.backend.read({ type: 'data', name: id });
      bytesRead += raw.length;
    } catch (err) {
      problems.push(`unreadable: ${(err as Error).message}`);
    }
    if (raw) {
      const known = [...marks].some((k) => k.startsWith(`${id}:`)); // a pack with marked damage no longer matches its name: known
      if (!known && sha256(raw).toString('hex') !== id) problems.push('content does not match its name (SHA-256)');
      const failed: BlobEntry[] = [];
      for (const e of p.entries) {
        try {
          const plain = repo.openBlob(raw.subarray(e.offset, e.offset + e.length), e.id, e.flags, file);
          if (plain.length !== e.rawLength || !repo.idFor(sha256(plain)).equals(e.id)) failed.push(e);
        } catch {
          failed.push(e);
        }
      }
      if (failed.length) {
        problems.push(`${failed.length} of ${p.entries.length} blobs fail verification (marked damaged: the next plan run stores them again from the source)`);
        bad.set(id, { size: p.size, entries: failed });
      }
    }
    if (problems.length) {
      damaged.push(id);
      errors.push(`${file} is damaged: ${problems.join('; ')}`);
    }
  }
  try {
    await writeDamageMarks(repo, bad);
  } catch (err) {
    errors.push(`could not record the damage in the repository: ${(err as Error).message}`);
  }
  return { ok: errors.length === 0, slot: run % slots, slots, packsTotal: packs.size, packsRead: chosen.length, bytesRead, errors, damagedPacks: damaged };
}

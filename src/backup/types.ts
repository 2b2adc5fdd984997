// Owns the plain data shapes of the engine: tree nodes, trees, snapshots and their summaries
// (docs/backup-format.md "Trees", "Snapshots"). No logic.

export interface TreeNode {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  /** ns since the epoch, decimal */
  mtime: string;
  size: number;
  inode: number;
  dev: number;
  links: number;
  /** files: chunk SHA-256 hex, in order */
  content?: string[];
  /** files: raw chunk lengths */
  sizes?: number[];
  /** dirs: SHA-256 hex of the child tree's plaintext */
  subtree?: string;
  /** symlinks */
  target?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

export interface SnapshotSummary {
  files: number;
  dirs: number;
  bytes: number;
  filesNew: number;
  filesUnchanged: number;
  bytesRead: number;
  blobsAdded: number;
  bytesStored: number;
  errors: number;
  skipped: number;
  durationMs: number;
}

export interface Snapshot {
  version: 1;
  time: string;
  host: string;
  user: string;
  paths: string[];
  tags: string[];
  tree: string;
  parent: string | null;
  summary: SnapshotSummary;
  /** set by `repair snapshots`: what this snapshot lost compared with its original */
  repaired?: RepairRecord;
}

export interface RepairRecord {
  time: string;
  original: string;
  /** files whose data was lost: [start, end) byte ranges, now zeros */
  files: { path: string; lost: [number, number][] }[];
  /** directories whose listing was lost (now empty) */
  dirs: string[];
}

export interface SnapshotInfo extends Snapshot {
  id: string;
}

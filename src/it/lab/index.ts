// The multi-host lab's public face: hosts as network namespaces on a private bridge, faults
// (host death, partitions, pauses), an etcd cluster, PostgreSQL inside a host, and the write
// checker. Used by tests (src/it/, failover/ e2e) and benchmarks (bench/cluster-failover.mjs).
export { createLab, Lab, LabHost, PROBE, type LabOptions, type ExecResult, type ProbeAnswer } from './lab.js';
export { LabProcess, type SpawnOptions, type ExitInfo } from './proc.js';
export { LabEtcd, startLabEtcd, ETCD_CLIENT_PORT, ETCD_PEER_PORT, type LabEtcdOptions, type Member } from './etcd.js';
export { startPostgres, PG_BIN, type LabPostgres } from './postgres.js';
export { listNamespaces, NS_PREFIX, removeStale } from './netns.js';
export type { FirewallKind } from './firewall.js';
export { check, longestGap, lostWrites, splitBrain, type CheckInput, type CheckReport, type WriteRecord, type RowKey, type Gap } from './checker.js';
export { runWriters, readRows, WRITERS, type WritersRun, type WritersResult, type Progress } from './run-writers.js';
export { LabBulwark, clusterConfig, readDbStatus, BULWARK_BIN, API_PORT, WRITE_PORT, READ_PORT, PG_PORT, type ClusterSpec, type DbStatus, type Instance } from './bulwark.js';
export { underLoad, type UnderLoadOptions, type UnderLoadResult } from './scenario.js';

// Owns the test harness for s3rver (an S3-compatible server) on a loopback port 0, with its own
// data directory and pre-created buckets. Used by S3 tests only.
import { createRequire } from 'node:module';
import { scratchDir } from '../../testing/helpers.js';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

export interface S3Server {
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

export async function startS3rver(buckets: string[]): Promise<S3Server> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const { dir, cleanup } = scratchDir('bulwark-s3rver-');
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    stop: async () => {
      await server.close();
      cleanup();
    },
  };
}

// The program PostgreSQL's archive_command and restore_command run for cold standby (one process
// per WAL file, as the postgres OS user):
//   node walcmd.js push DIR PATH NAME    archive PATH as DIR/NAME (atomic, never overwrites)
//   node walcmd.js fetch DIR NAME PATH   copy DIR/NAME to PATH; exit 1 when it is not archived
// Exit 0 tells PostgreSQL the file is safe (push) or restored (fetch); any other status makes
// it retry (push) or end recovery at that point (fetch). Imports only wal.ts and node: built-ins.
import { fetchWal, pushWal } from './wal.js';

function main(argv: string[]): number {
  const [verb, dir, a, b] = argv;
  if (!verb || !dir || !a || !b || (verb !== 'push' && verb !== 'fetch')) {
    process.stderr.write('usage: walcmd.js push DIR PATH NAME | fetch DIR NAME PATH\n');
    return 2;
  }
  try {
    if (verb === 'push') {
      pushWal(dir, a, b);
      return 0;
    }
    return fetchWal(dir, a, b) ? 0 : 1;
  } catch (err) {
    process.stderr.write(`bulwark wal ${verb}: ${(err as Error).message}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));

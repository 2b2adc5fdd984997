// Owns the proxy's listening sockets: binding a configured address (with the error a user can act
// on), the bound address once port 0 is resolved, closing, and the one-listener-per-address rule
// across services and databases that the schema cannot check.
import type { AddressInfo, Server } from 'node:net';
import { parseHostPort } from '../core/config/types.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import { BulwarkError } from '../core/errors.js';

export function boundAddress(server: Server): string {
  const a = server.address() as AddressInfo | null;
  if (!a) return '';
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

export async function listenOn(server: Server, listen: string, what: string): Promise<string> {
  const hp = parseHostPort(listen);
  if (!hp) throw new BulwarkError('BULWARK_PROXY_CONFIG', `${what}: bad listen address '${listen}'`);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(
        new BulwarkError('BULWARK_PROXY_LISTEN', `${what}: cannot listen on ${listen}: ${err.code ?? err.message}`, {
          hint: err.code === 'EADDRINUSE' ? 'another process holds that port: stop it or change the listen address' : 'check the listen address',
          cause: err,
        }),
      );
    server.once('error', onError);
    server.listen(hp.port, hp.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return boundAddress(server);
}

/** Stops accepting; resolves once every connection of the server has closed. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Checks what the schema cannot: one listener per address across services and databases. */
export function checkListeners(config: BulwarkConfig): void {
  const seen = new Map<string, string>();
  const claim = (addr: string, who: string): void => {
    if (addr.endsWith(':0')) return;
    const prev = seen.get(addr);
    if (prev) throw new BulwarkError('BULWARK_PROXY_CONFIG', `${who} and ${prev} both listen on ${addr}`, { hint: 'give each service and database its own listen address' });
    seen.set(addr, who);
  };
  for (const [name, s] of Object.entries(config.services)) claim(s.listen, `services.${name}.listen`);
  for (const [name, d] of Object.entries(config.databases)) {
    claim(d.listen, `databases.${name}.listen`);
    if (d.read_listen) claim(d.read_listen, `databases.${name}.read_listen`);
  }
}

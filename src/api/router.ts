// Owns matching HTTP requests to routes: "/v1/heartbeat/:service/:node" style patterns. Pure.
import type { Route } from '../core/subsystem.js';

export interface Match {
  route: Route;
  params: Record<string, string>;
}

export class Router {
  readonly #routes: Array<{ route: Route; parts: string[] }> = [];

  add(route: Route): void {
    this.#routes.push({ route, parts: route.path.split('/').filter(Boolean) });
  }

  /** Finds the route for method and path; `allowed` lists the methods the path accepts when the method does not match. */
  match(method: string, pathname: string): { match?: Match; allowed: string[] } {
    const segs = pathname.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const { route, parts } of this.#routes) {
      if (parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i] as string;
        const s = segs[i] as string;
        if (p.startsWith(':')) {
          try {
            params[p.slice(1)] = decodeURIComponent(s);
          } catch {
            ok = false;
            break;
          }
        } else if (p !== s) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { match: { route, params }, allowed };
      allowed.push(route.method);
    }
    return { allowed };
  }
}

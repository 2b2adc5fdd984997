// Owns the dashboard's files: web/index.html, web/app.js and web/app.css from the package, and
// uPlot (charts) from node_modules, all served by the API from memory: no CDN, no build step,
// the page works offline. The page itself talks to the API over HTTP like any client.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const WEB = fileURLToPath(new URL('../../web/', import.meta.url));
const require = createRequire(import.meta.url);

const ASSETS: Record<string, { path: () => string; type: string }> = {
  'app.js': { path: () => `${WEB}app.js`, type: 'text/javascript; charset=utf-8' },
  'app.css': { path: () => `${WEB}app.css`, type: 'text/css; charset=utf-8' },
  'uplot.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Buffer>();

function read(path: string): Buffer {
  let b = cache.get(path);
  if (!b) {
    b = readFileSync(path);
    cache.set(path, b);
  }
  return b;
}

export function dashboardHtml(): string {
  return read(`${WEB}index.html`).toString('utf8');
}

/** One of the page's assets by file name, or undefined. */
export function dashboardAsset(file: string): { body: Buffer; type: string } | undefined {
  const a = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
  return a ? { body: read(a.path()), type: a.type } : undefined;
}

// Serves the built renderer (renderer/dist) with correct types and a strict CSP.
// Paths are resolved inside the root and anything escaping it is refused.
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { packageRoot } from '../util/package-root';

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

const NOT_BUILT = `<!doctype html><html><head><meta charset="utf-8"><title>Kiln</title></head>
<body><h1>Kiln</h1><p>The dashboard is not built. Run <code>npm run build</code>, then reload.
The API is up: <a href="/api/status">/api/status</a>.</p></body></html>`;

export function defaultRendererDir(): string {
  return join(packageRoot(), 'renderer', 'dist');
}

export function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
}

/**
 * Answers a GET for a renderer file. Returns false when there is no such file,
 * so the caller can send its 404. Unknown non-asset paths fall back to index.html
 * (client-side routes).
 */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string, pathname: string): Promise<boolean> {
  const rootAbs = resolve(root);
  const index = join(rootAbs, 'index.html');
  if (!existsSync(index)) {
    if (pathname !== '/' && pathname !== '/index.html') return false;
    send(res, 200, 'text/html; charset=utf-8', NOT_BUILT, req.method === 'HEAD');
    return true;
  }
  const rel = pathname === '/' ? 'index.html' : pathname.slice(1);
  const file = resolve(rootAbs, rel);
  if (file !== rootAbs && !file.startsWith(rootAbs + sep)) return false;
  let target = file;
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) {
    // A client-side route (no extension) gets the app; a missing asset is a 404.
    if (extname(pathname)) return false;
    target = index;
  }
  const type = TYPES[extname(target).toLowerCase()] ?? 'application/octet-stream';
  const size = target === file ? st!.size : (await stat(target)).size;
  securityHeaders(res);
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': size,
    'Cache-Control': target === index ? 'no-cache' : 'public, max-age=3600',
  });
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  createReadStream(target)
    .on('error', () => res.destroy())
    .pipe(res);
  return true;
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  securityHeaders(res);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' });
  res.end(head ? undefined : body);
}

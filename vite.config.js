import { defineConfig } from 'vite';
import { readdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join, extname } from 'node:path';
import { gzipSync, constants } from 'node:zlib';

// Served compressed: the build writes a `.gz` beside every compressible file of dist/ (the wasm
// core is ~37 MB raw, ~6 MB gzipped), and the preview server answers a request that accepts gzip
// with it. Precompressed once at level 9, so no request pays for compression.
const COMPRESSIBLE = new Set(['.wasm', '.js', '.css', '.html', '.json', '.svg', '.ttf', '.rlhf']);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const compressed = {
  name: 'gzip-dist',
  apply: 'build',
  closeBundle() {
    for (const file of walk('dist')) {
      if (!COMPRESSIBLE.has(extname(file))) continue;
      const raw = readFileSync(file);
      if (raw.length < 1024) continue;
      writeFileSync(`${file}.gz`, gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }));
    }
  },
};

const TYPES = { '.wasm': 'application/wasm', '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html', '.json': 'application/json', '.svg': 'image/svg+xml', '.ttf': 'font/ttf', '.rlhf': 'application/octet-stream' };

const servedCompressed = {
  name: 'serve-gzip',
  configurePreviewServer(server) {
    server.middlewares.use((req, res, next) => {
      const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
      const type = TYPES[extname(path)];
      const gz = join('dist', `${path}.gz`);
      if (!type || !/\bgzip\b/.test(req.headers['accept-encoding'] ?? '') || path.includes('..') || !existsSync(gz)) return next();
      res.setHeader('Content-Type', type);
      res.setHeader('Content-Encoding', 'gzip');
      res.setHeader('Vary', 'Accept-Encoding');
      res.setHeader('Cache-Control', 'no-cache');
      res.end(readFileSync(gz));
    });
  },
};

// The Content-Security-Policy of the built page: nothing from other origins, no inline script.
// 'wasm-unsafe-eval' lets the worker compile the wasm module; inline *styles* are needed by
// uPlot and KaTeX, which position elements with style attributes.
const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export default defineConfig({
  root: '.',
  publicDir: 'www/public',
  build: {
    outDir: 'dist',
    rollupOptions: { input: { main: 'index.html', bench: 'bench.html' } },
    emptyOutDir: true,
    // The wasm module is ~28 MB; it is fetched by the worker, not inlined.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2048,
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 8080, strictPort: true },
  plugins: [
    compressed,
    servedCompressed,
    {
      name: 'content-security-policy',
      apply: 'build',
      transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CSP }, injectTo: 'head-prepend' }],
    },
  ],
});

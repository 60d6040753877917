import { defineConfig } from 'vite';

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
    {
      name: 'content-security-policy',
      apply: 'build',
      transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CSP }, injectTo: 'head-prepend' }],
    },
  ],
});

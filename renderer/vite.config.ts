// Builds the dashboard into renderer/dist. The engine serves it under a strict CSP
// (script-src 'self'), so the output must be plain module files with relative paths.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));
// `vite dev` proxies the API to a running engine (or to test/e2e-ui/fake-api.ts).
const apiTarget = process.env.KILN_API ?? 'http://127.0.0.1:8981';

export default defineConfig({
  root,
  base: './',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The polyfill would be inlined into the entry; every target Electron/Chromium ships has modulepreload.
    modulePreload: { polyfill: false },
    // Inline assets as data: URLs only for images (img-src allows data:); fonts and scripts stay files.
    assetsInlineLimit: 0,
    target: 'es2022',
  },
  server: {
    proxy: { '/api': { target: apiTarget, changeOrigin: false } },
  },
});

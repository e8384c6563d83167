import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Served by the registry at /console/ under a strict CSP: no inline script or style, so
// everything (the module preload polyfill included) ships as files.
export default defineConfig({
  base: '/console/',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // The code editor's chunk (CodeMirror, ~510 kB) is loaded only by the workflow pages.
    chunkSizeWarningLimit: 600,
  },
});

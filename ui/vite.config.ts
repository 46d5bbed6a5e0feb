import { defineConfig } from 'vitest/config';

const api = process.env.MESHFORGE_API ?? 'http://127.0.0.1:38100';
// Keys starting with ^ are regular expressions: a plain '/3d' prefix would also swallow '/3d-test/'.
const proxy = {
  '^/3d/': { target: api, changeOrigin: true },
  '^/health$': { target: api, changeOrigin: true },
};

// Vite answers 403 to Host names it does not know (a DNS-rebinding guard). Host nginx passes the public
// name on, so list it here; localhost and IP addresses are always allowed.
const allowedHosts = (process.env.MESHFORGE_UI_ALLOWED_HOSTS ?? 'elohim-bitch-gpu.insanelabs.org')
  .split(',')
  .map((host) => host.trim())
  .filter(Boolean);

export default defineConfig({
  base: '/3d-test/',
  server: { proxy, allowedHosts },
  preview: { proxy, allowedHosts },
  build: { outDir: 'dist', chunkSizeWarningLimit: 1000 },
  test: { environment: 'node', include: ['src/**/*.test.ts', 'tests/**/*.test.ts'] },
});

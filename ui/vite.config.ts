import { defineConfig } from 'vitest/config';

const api = process.env.MESHFORGE_API ?? 'http://127.0.0.1:38100';
// Keys starting with ^ are regular expressions: a plain '/3d' prefix would also swallow '/3d-test/'.
const proxy = {
  '^/3d/': { target: api, changeOrigin: true },
  '^/health$': { target: api, changeOrigin: true },
};

export default defineConfig({
  base: '/3d-test/',
  server: { proxy },
  preview: { proxy },
  build: { outDir: 'dist', chunkSizeWarningLimit: 1000 },
  test: { environment: 'node', include: ['src/**/*.test.ts', 'tests/**/*.test.ts'] },
});

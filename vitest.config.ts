import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // Property and model-based tests run thousands of steps; give them room on a 2-core CI box.
    testTimeout: 120_000,
    hookTimeout: 30_000,
  },
});

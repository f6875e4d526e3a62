/**
 * The metrics endpoint (issue 17, "Operations"): on port 0 (any free port) at 127.0.0.1, a real
 * request with fetch: GET /metrics answers 200 with the registry's text and content type; HEAD
 * the headers; other paths 404; other methods 405; close() stops it. No timers.
 */
import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { InvalidOptionError } from '../../src/core/errors.js';
import { serveMetrics } from '../../src/metrics/http.js';
import { parseExposition } from './exposition.js';

function registryWithOne(): Registry {
  const registry = new Registry();
  const counter = new Counter({ name: 'ai_batch_test_total', help: 'a test counter', registers: [registry] });
  counter.inc(7);
  return registry;
}

describe('serveMetrics', () => {
  it('GET /metrics: 200, the text and content type; HEAD; other paths 404; other methods 405', async () => {
    const registry = registryWithOne();
    const server = await serveMetrics(registry, { port: 0 });
    try {
      expect(server.port).toBeGreaterThan(0);
      expect(server.host).toBe('127.0.0.1');
      const base = `http://127.0.0.1:${server.port}`;
      const ok = await fetch(`${base}/metrics`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toBe(registry.contentType);
      expect(registry.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await ok.text();
      expect(parseExposition(text).value('ai_batch_test_total')).toBe(7);
      // Read at each request.
      (registry.getSingleMetric('ai_batch_test_total') as Counter).inc();
      expect(
        parseExposition(await (await fetch(`${base}/metrics?x=1`)).text()).value('ai_batch_test_total'),
      ).toBe(8);
      const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      for (const path of ['/', '/metric', '/metrics/x', '/favicon.ico']) {
        const res = await fetch(`${base}${path}`);
        expect(res.status, path).toBe(404);
        await res.text();
      }
      const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, HEAD');
      await post.text();
    } finally {
      await server.close();
    }
    await server.close();
    await expect(fetch(`http://127.0.0.1:${server.port}/metrics`)).rejects.toThrow();
  });

  it('a collect that throws: 500 with its message', async () => {
    const registry = new Registry();
    const { Gauge } = await import('prom-client');
    new Gauge({
      name: 'ai_batch_broken',
      help: 'broken',
      registers: [registry],
      collect: () => {
        throw new Error('stats failed');
      },
    });
    const server = await serveMetrics(registry, { port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(500);
      expect(await res.text()).toContain('stats failed');
    } finally {
      await server.close();
    }
  });

  it('a port taken: rejects; bad options: InvalidOptionError naming the field', async () => {
    const registry = registryWithOne();
    const first = await serveMetrics(registry, { port: 0 });
    try {
      await expect(serveMetrics(registry, { port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
    for (const [options, field] of [
      [{ port: -1 }, 'port'],
      [{ port: 65_536 }, 'port'],
      [{ port: 1.5 }, 'port'],
      [{}, 'port'],
      [{ port: 0, host: '' }, 'host'],
      [{ port: 0, hots: 'x' }, 'hots'],
    ] as const)
      await expect(serveMetrics(registry, options as never)).rejects.toThrow(
        expect.objectContaining({ field }) as Error,
      );
    await expect(serveMetrics({} as never, { port: 0 })).rejects.toThrow(InvalidOptionError);
  });
});

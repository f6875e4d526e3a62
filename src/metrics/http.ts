/**
 * A Prometheus scrape endpoint (docs/metrics.md): `GET /metrics` (and `HEAD`) answers a
 * registry's text, with the registry's content type; any other path is 404, any other method
 * 405. Nothing else is served.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { InvalidOptionError } from '../core/errors.js';
import { checkOptionObject, registryOf } from './common.js';

/** `serveMetrics`'s options. */
export type ServeMetricsOptions = {
  /** The TCP port; 0 takes any free one (`port` on the result says which). */
  port: number;
  /** The address to listen on. @default '127.0.0.1' (this machine only; '0.0.0.0' for every interface) */
  host?: string;
};

/** A listening metrics endpoint. */
export type MetricsServer = {
  /** The port it listens on. */
  readonly port: number;
  /** The address it listens on. */
  readonly host: string;
  /** Stops listening (and ends open connections); resolves once it has. Idempotent. */
  close(): Promise<void>;
};

/**
 * Serves `registry` at `http://<host>:<port>/metrics`; resolves once it listens. Throws
 * `InvalidOptionError` naming the field for a bad port or host; rejects with the server's error
 * when it cannot listen (the port is taken, say).
 */
export async function serveMetrics(registry: Registry, options: ServeMetricsOptions): Promise<MetricsServer> {
  registryOf(registry, true);
  if (options === undefined) throw new InvalidOptionError('options', options, 'an object: { port, host? }');
  const checked = checkOptionObject<ServeMetricsOptions>('options', options, ['port', 'host']);
  const port = checked.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535)
    throw new InvalidOptionError('port', port, 'a whole number in [0, 65535] (0: any free port)');
  const host = checked.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0 || host.length > 255)
    throw new InvalidOptionError('host', host, "an address to listen on, e.g. '127.0.0.1' or '0.0.0.0'");

  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('not found: metrics are at /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      response.end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        response.writeHead(200, { 'content-type': registry.contentType });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(
          `metrics could not be collected: ${error instanceof Error ? error.message : String(error)}\n`,
        );
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    host,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

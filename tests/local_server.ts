/**
 * Serves a fetch-style handler over real HTTP on 127.0.0.1 with the runtime's own server:
 * `Deno.serve` on Deno, `Bun.serve` on Bun, `node:http` on Node.js (which has no fetch-style
 * server: requests and responses are converted). Close it before the test ends.
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

type Handler = (request: Request) => Response | Promise<Response>;

/** Just what this file uses of Bun (Bun's types are not installed; Deno checks this file). */
declare const Bun: {
  serve(options: { hostname: string; port: number; fetch: Handler }): {
    readonly port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
};

/** A running server. */
export interface LocalServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  readonly origin: string;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Serves `handler` on an ephemeral port of 127.0.0.1. */
export function serveLocally(handler: Handler): Promise<LocalServer> {
  if (typeof Deno !== "undefined") {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
    return Promise.resolve({
      origin: `http://127.0.0.1:${server.addr.port}`,
      close: () => server.shutdown(),
    });
  }
  if (typeof Bun !== "undefined") {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handler });
    return Promise.resolve({
      origin: `http://127.0.0.1:${server.port}`,
      close: async () => {
        await server.stop(true);
      },
    });
  }
  return serveWithNodeHttp(handler);
}

async function serveWithNodeHttp(handler: Handler): Promise<LocalServer> {
  const server = createServer((incoming, outgoing) => {
    answer(handler, incoming, outgoing).catch((error) => outgoing.destroy(error));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Answers one `node:http` request with `handler`, as `Deno.serve` would: the request's signal
 * aborts when the client goes away, the response body is streamed as it is read (and cancelled
 * when the client goes away), and a body that errors cuts the connection, so the client sees
 * the error rather than a short body.
 */
async function answer(
  handler: Handler,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
): Promise<void> {
  const clientGone = new AbortController();
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) clientGone.abort();
  });
  const headers = new Headers();
  for (let i = 0; i + 1 < incoming.rawHeaders.length; i += 2) {
    headers.append(incoming.rawHeaders[i]!, incoming.rawHeaders[i + 1]!);
  }
  const method = incoming.method ?? "GET";
  // The tests send small bodies: reading one whole is simpler than streaming it.
  const chunks: Uint8Array[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Uint8Array);
  const request = new Request(`http://${incoming.headers.host}${incoming.url}`, {
    method,
    headers,
    signal: clientGone.signal,
    ...(method === "GET" || method === "HEAD" ? {} : { body: concat(chunks) }),
  });
  const response = await handler(request);
  const rawHeaders: string[] = [];
  for (const [name, value] of response.headers) rawHeaders.push(name, value);
  outgoing.writeHead(response.status, response.statusText, rawHeaders);
  if (response.body === null || method === "HEAD") {
    await response.body?.cancel();
    outgoing.end();
    return;
  }
  const reader = response.body.getReader();
  outgoing.once("close", () => {
    reader.cancel().catch(() => {});
  });
  try {
    while (!outgoing.destroyed) {
      const { done, value } = await reader.read();
      if (done) {
        outgoing.end();
        return;
      }
      if (!outgoing.write(value)) {
        await new Promise((resolve) => {
          outgoing.once("drain", resolve);
          outgoing.once("close", resolve);
        });
      }
    }
  } catch (error) {
    outgoing.destroy(error as Error);
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const whole = new Uint8Array(chunks.reduce((length, chunk) => length + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.length;
  }
  return whole;
}

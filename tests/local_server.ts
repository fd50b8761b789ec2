/**
 * Serves a fetch-style handler over real HTTP on 127.0.0.1 with the runtime's own server:
 * `Deno.serve` on Deno, `Bun.serve` on Bun. Close it before the test ends.
 */

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
export function serveLocally(handler: Handler): LocalServer {
  if (typeof Deno !== "undefined") {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
    return {
      origin: `http://127.0.0.1:${server.addr.port}`,
      close: () => server.shutdown(),
    };
  }
  if (typeof Bun !== "undefined") {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handler });
    return {
      origin: `http://127.0.0.1:${server.port}`,
      close: async () => {
        await server.stop(true);
      },
    };
  }
  throw new Error("serveLocally() needs Deno or Bun");
}

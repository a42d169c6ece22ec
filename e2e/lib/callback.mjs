/**
 * @file The OAuth client's loopback redirect endpoint (RFC 8252 §7.3): an HTTP
 * server on 127.0.0.1 that receives the authorization response at `/callback`.
 *
 * Invariants:
 * - It listens on 127.0.0.1 only, never on a wildcard address, because a native
 *   client's redirect URI must not be reachable from other hosts (RFC 8252 §8.3).
 * - Each callback is delivered exactly once, in arrival order, to the next
 *   `nextCallback()` waiter; callbacks that arrive before anyone waits are queued.
 * - The page it answers shows no query parameter: the code must not be echoed
 *   into HTML, logs or screenshots.
 */

import { createServer } from 'node:http';

/**
 * One authorization response received at the callback path.
 *
 * @typedef {object} CallbackResult
 * @property {string} url The full callback URL as received (contains the code: do not log it).
 * @property {Record<string, string>} params The query parameters (`code`, `state`, `iss`, or `error`...).
 */

/**
 * A running callback server.
 *
 * @typedef {object} CallbackServer
 * @property {number} port The port it listens on.
 * @property {string} redirectUri `http://127.0.0.1:<port><path>`, to register as the redirect URI.
 * @property {(timeoutMs?: number) => Promise<CallbackResult>} nextCallback
 *   Resolves with the next authorization response.
 * @property {() => Promise<void>} close Stops listening and closes open connections.
 */

/** The page shown in the browser once the authorization response arrived. */
const DONE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Authorization complete</title>
</head>
<body>
<main id="callback-done">
<h1>Authorization complete</h1>
<p>You can close this window.</p>
</main>
</body>
</html>
`;

/**
 * Starts the loopback callback server.
 *
 * @param {{port?: number, path?: string}} [options] `port` 0 (default) picks a free port.
 * @returns {Promise<CallbackServer>}
 */
export async function startCallbackServer(options = {}) {
  const path = options.path ?? '/callback';
  /** @type {CallbackResult[]} */
  const queued = [];
  /** @type {Array<(result: CallbackResult) => void>} */
  const waiters = [];

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', `http://${request.headers.host ?? '127.0.0.1'}`);
    if (request.method !== 'GET' || url.pathname !== path) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('Not found\n');
      return;
    }
    const result = { url: url.href, params: Object.fromEntries(url.searchParams) };
    response.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // The page has no script and needs nothing from elsewhere.
      'content-security-policy': "default-src 'none'; img-src data:",
      'referrer-policy': 'no-referrer',
    });
    response.end(DONE_PAGE);
    const waiter = waiters.shift();
    if (waiter) waiter(result);
    else queued.push(result);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('callback server has no TCP address');
  }
  const port = address.port;

  return {
    port,
    redirectUri: `http://127.0.0.1:${port}${path}`,
    nextCallback(timeoutMs = 120_000) {
      const ready = queued.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiters.indexOf(deliver);
          if (index >= 0) waiters.splice(index, 1);
          reject(new Error(`no authorization response at ${path} within ${timeoutMs} ms`));
        }, timeoutMs);
        const deliver = (result) => {
          clearTimeout(timer);
          resolve(result);
        };
        waiters.push(deliver);
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections();
      });
    },
  };
}

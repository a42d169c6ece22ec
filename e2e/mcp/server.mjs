#!/usr/bin/env node
/**
 * @file A real MCP server built with the official TypeScript SDK: `McpServer` on a
 * stateful `StreamableHTTPServerTransport` (one transport per `Mcp-Session-Id`),
 * serving `/mcp` on 127.0.0.1 with POST, GET (SSE) and DELETE as the SDK does.
 *
 * It has no authentication of its own: in the end-to-end suite Latchkey's guard
 * sits in front of it and forwards the caller's identity in `x-latchkey-subject`,
 * `x-latchkey-client-id`, `x-latchkey-scope` and `x-latchkey-issuer`, which the
 * `whoami` tool echoes.
 *
 * Tools: `add` {a, b} → the sum as text; `whoami` → the identity headers as JSON.
 *
 * Invariants:
 * - The SDK's DNS-rebinding protection is on with `allowedHosts` =
 *   [`127.0.0.1:<port>`], so a proxy that forwards the wrong `Host` is refused
 *   (403) by the SDK itself.
 * - Usage: `node e2e/mcp/server.mjs [port]` (or `MCP_PORT`); port 0 picks a free one.
 *   Once listening it prints exactly one line
 *   `mcp-server listening on http://127.0.0.1:<port>/mcp` on stdout.
 * - Nothing about requests is logged except method, path and status on stderr
 *   when `MCP_SERVER_LOG=1`; headers (which may carry tokens) never are.
 */

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { isMainModule } from '../lib/cli.mjs';

/** The path the MCP endpoint is served at. */
export const MCP_PATH = '/mcp';

/** Identity headers Latchkey's guard forwards to the upstream MCP server. */
export const IDENTITY_HEADERS = Object.freeze([
  'x-latchkey-subject',
  'x-latchkey-client-id',
  'x-latchkey-scope',
  'x-latchkey-issuer',
]);

/** Largest JSON-RPC body accepted (bytes); the SDK applies its own limit as well. */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Builds the MCP server with its tools. One instance per session, as the SDK's
 * stateful examples do, because a `McpServer` connects to exactly one transport.
 *
 * @returns {McpServer}
 */
export function buildMcpServer() {
  const server = new McpServer({ name: 'latchkey-e2e-mcp', version: '1.0.0' });
  server.registerTool(
    'add',
    {
      title: 'Add',
      description: 'Adds two numbers and returns the sum as text.',
      inputSchema: { a: z.number(), b: z.number() },
    },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }),
  );
  server.registerTool(
    'whoami',
    {
      title: 'Who am I',
      description: 'Returns the identity headers the Latchkey guard forwarded, as JSON.',
      inputSchema: {},
    },
    async (_args, extra) => {
      const headers = extra.requestInfo?.headers ?? {};
      /** @type {Record<string, string|null>} */
      const identity = {};
      for (const name of IDENTITY_HEADERS) {
        const value = headers[name];
        identity[name] = typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : null;
      }
      return { content: [{ type: 'text', text: JSON.stringify(identity) }] };
    },
  );
  return server;
}

/**
 * Sends a JSON-RPC error with `status` (used before any transport is involved).
 *
 * @param {import('node:http').ServerResponse} response
 * @param {number} status
 * @param {number} code
 * @param {string} message
 */
function sendJsonRpcError(response, status, code, message) {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

/**
 * Reads and parses a JSON request body, refusing bodies over {@link MAX_BODY_BYTES}.
 *
 * @param {import('node:http').IncomingMessage} request
 * @returns {Promise<{ok: true, value: unknown} | {ok: false, status: number, message: string}>}
 */
async function readJsonBody(request) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { ok: false, status: 413, message: 'Request body too large' };
    chunks.push(chunk);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return { ok: false, status: 400, message: 'Parse error: body is not JSON' };
  }
}

/**
 * A running MCP server.
 *
 * @typedef {object} RunningMcpServer
 * @property {number} port The port it listens on.
 * @property {string} url `http://127.0.0.1:<port>/mcp`.
 * @property {() => number} sessionCount How many sessions are open.
 * @property {() => Promise<void>} close Closes every session and stops listening.
 */

/**
 * Starts the MCP server on 127.0.0.1.
 *
 * @param {{port?: number, log?: (line: string) => void}} [options]
 * @returns {Promise<RunningMcpServer>}
 */
export async function startMcpServer(options = {}) {
  /** @type {Map<string, StreamableHTTPServerTransport>} */
  const transports = new Map();
  let allowedHost = '';
  const log = options.log ?? (() => undefined);

  const httpServer = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    response.on('finish', () => log(`${request.method} ${url.pathname} ${response.statusCode}`));
    try {
      if (url.pathname !== MCP_PATH) {
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('Not found\n');
        return;
      }
      const sessionHeader = request.headers['mcp-session-id'];
      const sessionId = Array.isArray(sessionHeader) ? sessionHeader[0] : sessionHeader;
      const existing = sessionId === undefined ? undefined : transports.get(sessionId);

      if (request.method === 'POST') {
        const body = await readJsonBody(request);
        if (!body.ok) {
          sendJsonRpcError(response, body.status, body.status === 400 ? -32700 : -32000, body.message);
          return;
        }
        if (existing !== undefined) {
          await existing.handleRequest(request, response, body.value);
          return;
        }
        if (sessionId === undefined && isInitializeRequest(body.value)) {
          // A new session: a fresh transport and server, as in the SDK's stateful example.
          const transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            enableDnsRebindingProtection: true,
            allowedHosts: [allowedHost],
            onsessioninitialized: (newSessionId) => {
              transports.set(newSessionId, transport);
            },
          });
          transport.onclose = () => {
            if (transport.sessionId !== undefined) transports.delete(transport.sessionId);
          };
          await buildMcpServer().connect(transport);
          await transport.handleRequest(request, response, body.value);
          return;
        }
        if (sessionId !== undefined) {
          // Streamable HTTP: an unknown session is 404 so the client starts a new one.
          sendJsonRpcError(response, 404, -32001, 'Session not found');
          return;
        }
        sendJsonRpcError(response, 400, -32000, 'Bad Request: No valid session ID provided');
        return;
      }

      if (request.method === 'GET' || request.method === 'DELETE') {
        if (existing === undefined) {
          if (sessionId === undefined) sendJsonRpcError(response, 400, -32000, 'Bad Request: Mcp-Session-Id required');
          else sendJsonRpcError(response, 404, -32001, 'Session not found');
          return;
        }
        await existing.handleRequest(request, response);
        return;
      }

      response.setHeader('allow', 'GET, POST, DELETE');
      sendJsonRpcError(response, 405, -32000, 'Method not allowed.');
    } catch (error) {
      log(`error: ${error instanceof Error ? error.message : String(error)}`);
      if (!response.headersSent) sendJsonRpcError(response, 500, -32603, 'Internal server error');
      else response.end();
    }
  });

  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, '127.0.0.1', () => {
      httpServer.off('error', reject);
      resolve(undefined);
    });
  });
  const address = httpServer.address();
  if (address === null || typeof address === 'string') throw new Error('MCP server has no TCP address');
  const port = address.port;
  // Exactly the authority clients use; anything else (a proxy's own host, evil.example) is refused.
  allowedHost = `127.0.0.1:${port}`;

  return {
    port,
    url: `http://127.0.0.1:${port}${MCP_PATH}`,
    sessionCount: () => transports.size,
    async close() {
      await Promise.all([...transports.values()].map((transport) => transport.close().catch(() => undefined)));
      transports.clear();
      await new Promise((resolve) => {
        httpServer.close(() => resolve(undefined));
        httpServer.closeAllConnections();
      });
    },
  };
}

if (isMainModule(import.meta.url)) {
  const rawPort = process.argv[2] ?? process.env.MCP_PORT ?? '0';
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`invalid port ${JSON.stringify(rawPort)}\n`);
    process.exit(2);
  }
  const verbose = process.env.MCP_SERVER_LOG === '1';
  const running = await startMcpServer({
    port,
    log: verbose ? (line) => process.stderr.write(`mcp-server: ${line}\n`) : undefined,
  });
  process.stdout.write(`mcp-server listening on ${running.url}\n`);
  const shutdown = async () => {
    await running.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

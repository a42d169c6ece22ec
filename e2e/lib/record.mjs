/**
 * @file Records every HTTP exchange an MCP SDK client makes, by wrapping the
 * `fetch` it is given, so a test can assert the exact OAuth discovery sequence
 * (401 → protected-resource metadata → AS metadata → register → authorize → token).
 *
 * Invariants:
 * - Nothing secret is recorded: tokens, codes, verifiers, secrets and `state` in
 *   bodies and queries, and the credentials of `Authorization` headers, are
 *   redacted (see `redact.mjs`). Presence is kept so tests can assert it.
 * - MCP endpoint bodies are never read by the recorder (they may be SSE streams
 *   the SDK is consuming); other JSON bodies are read from a clone.
 * - Each exchange gets a `kind` from the endpoints the recorder has learned
 *   (the MCP URL it was given, the well-known paths, and the endpoints of any AS
 *   metadata document that went through it).
 */

import { redactHeader, redactJson, redactParams, redactUrl } from './redact.mjs';

/**
 * The kinds of exchange a recorder tells apart.
 *
 * @typedef {'mcp'|'prm'|'as-metadata'|'register'|'authorize'|'token'|'revoke'|'cimd'|'other'} ExchangeKind
 */

/**
 * One recorded HTTP exchange (or a noted browser step, such as `authorize`).
 *
 * @typedef {object} Exchange
 * @property {number} seq Order of the request, from 1.
 * @property {ExchangeKind} kind What the request was for.
 * @property {string} method HTTP method.
 * @property {string} url Request URL with secret query parameters redacted.
 * @property {number} [status] Response status (absent when the request failed).
 * @property {string} [error] Network error message, when the request failed.
 * @property {string} [grantType] For `token`: the `grant_type` sent.
 * @property {string} [authorization] The `Authorization` scheme sent (`Bearer <redacted>`), if any.
 * @property {string} [sessionId] The `Mcp-Session-Id` sent, if any (an opaque id, not a credential).
 * @property {string} [responseSessionId] The `Mcp-Session-Id` the response assigned, if any.
 * @property {Record<string, string>} [requestParams] Form or query parameters sent, redacted.
 * @property {unknown} [requestJson] JSON body sent (not for MCP), redacted.
 * @property {string} [wwwAuthenticate] The `WWW-Authenticate` header of the response.
 * @property {unknown} [responseJson] JSON body received (not for MCP), redacted.
 * @property {string} [note] Free text attached by the runner (`authorize`).
 */

/** AS metadata members the recorder learns, to name the exchanges that follow. */
const ENDPOINT_NAMES = ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint'];

/** Well-known suffixes (RFC 9728 §3, RFC 8414 §3, OpenID Connect Discovery §4). */
const PRM_WELL_KNOWN = '/.well-known/oauth-protected-resource';
const AS_WELL_KNOWN = ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration'];

/**
 * Reads a request body into parameters or JSON, without consuming anything the
 * caller still needs (bodies given as strings or URLSearchParams are immutable).
 *
 * @param {unknown} body
 * @returns {{params?: Record<string, string>, json?: unknown}}
 */
function describeBody(body) {
  if (body instanceof URLSearchParams) return { params: redactParams(Object.fromEntries(body)) };
  if (typeof body === 'string') {
    try {
      return { json: redactJson(JSON.parse(body)) };
    } catch {
      return { params: redactParams(Object.fromEntries(new URLSearchParams(body))) };
    }
  }
  return {};
}

/**
 * Returns the header value `name` from any `HeadersInit` shape.
 *
 * @param {HeadersInit | undefined} headers
 * @param {string} name
 * @returns {string | undefined}
 */
function headerValue(headers, name) {
  if (headers === undefined) return undefined;
  const value = new Headers(headers).get(name);
  return value === null ? undefined : value;
}

/**
 * An HTTP recorder.
 *
 * @typedef {object} Recorder
 * @property {typeof fetch} fetch A `fetch` that records, to hand to the SDK.
 * @property {Exchange[]} exchanges Everything recorded so far, in order.
 * @property {(kind: ExchangeKind, method: string, url: string, extra?: Partial<Exchange>) => Exchange} note
 *   Records a step that did not go through `fetch` (the browser's authorization request).
 * @property {() => Record<string, string>} endpoints Endpoints learned from AS metadata.
 * @property {(fromSeq?: number) => string[]} summary `kind status` lines from `fromSeq` on, for assertions.
 */

/**
 * Creates a recorder for an MCP client talking to `mcpUrl`.
 *
 * @param {{mcpUrl: string, baseFetch?: typeof fetch, cimdUrl?: string}} options
 * @returns {Recorder}
 */
export function createRecorder(options) {
  const baseFetch = options.baseFetch ?? globalThis.fetch;
  const mcpUrl = new URL(options.mcpUrl);
  /** @type {Exchange[]} */
  const exchanges = [];
  /** @type {Record<string, string>} */
  const endpoints = {};

  /**
   * @param {URL} url
   * @param {string} method
   * @returns {ExchangeKind}
   */
  const classify = (url, method) => {
    const bare = `${url.origin}${url.pathname}`;
    if (bare === `${mcpUrl.origin}${mcpUrl.pathname}`) return 'mcp';
    if (url.pathname.startsWith(PRM_WELL_KNOWN)) return 'prm';
    if (AS_WELL_KNOWN.some((suffix) => url.pathname.startsWith(suffix) || url.pathname.endsWith(suffix))) {
      return 'as-metadata';
    }
    if (options.cimdUrl !== undefined && url.href === options.cimdUrl) return 'cimd';
    if (bare === endpoints.registration_endpoint && method === 'POST') return 'register';
    if (bare === endpoints.token_endpoint) return 'token';
    if (bare === endpoints.revocation_endpoint) return 'revoke';
    if (bare === endpoints.authorization_endpoint) return 'authorize';
    return 'other';
  };

  /** @type {typeof fetch} */
  const recordingFetch = async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : String(input));
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    const headers = init?.headers ?? request?.headers;
    const kind = classify(url, method);
    /** @type {Exchange} */
    const exchange = { seq: exchanges.length + 1, kind, method, url: redactUrl(url) };
    const authorization = headerValue(headers, 'authorization');
    if (authorization !== undefined) exchange.authorization = redactHeader('authorization', authorization);
    const sessionId = headerValue(headers, 'mcp-session-id');
    if (sessionId !== undefined) exchange.sessionId = sessionId;
    if (kind !== 'mcp') {
      const body = describeBody(init?.body);
      if (body.params !== undefined) exchange.requestParams = body.params;
      if (body.json !== undefined) exchange.requestJson = body.json;
      if (kind === 'token' && body.params !== undefined) exchange.grantType = body.params.grant_type;
    }
    exchanges.push(exchange);

    let response;
    try {
      response = await baseFetch(input, init);
    } catch (error) {
      exchange.error = error instanceof Error ? error.message : String(error);
      throw error;
    }
    exchange.status = response.status;
    const challenge = response.headers.get('www-authenticate');
    if (challenge !== null) exchange.wwwAuthenticate = challenge;
    const assignedSession = response.headers.get('mcp-session-id');
    if (assignedSession !== null) exchange.responseSessionId = assignedSession;
    const contentType = response.headers.get('content-type') ?? '';
    if (kind !== 'mcp' && contentType.toLowerCase().includes('json')) {
      try {
        const json = await response.clone().json();
        exchange.responseJson = redactJson(json);
        if (kind === 'as-metadata' && response.ok && json !== null && typeof json === 'object') {
          for (const name of ENDPOINT_NAMES) {
            const value = json[name];
            if (typeof value !== 'string') continue;
            try {
              // Compared without query, as request URLs are (see classify).
              const endpoint = new URL(value);
              endpoints[name] = `${endpoint.origin}${endpoint.pathname}`;
            } catch {
              // A malformed endpoint is the SDK's to reject; the recorder just cannot name it.
            }
          }
        }
      } catch {
        exchange.responseJson = '<unparseable JSON>';
      }
    }
    return response;
  };

  return {
    fetch: recordingFetch,
    exchanges,
    note(kind, method, url, extra = {}) {
      /** @type {Exchange} */
      const exchange = { seq: exchanges.length + 1, kind, method, url: redactUrl(url), ...extra };
      exchanges.push(exchange);
      return exchange;
    },
    endpoints: () => ({ ...endpoints }),
    summary(fromSeq = 1) {
      return exchanges
        .filter((exchange) => exchange.seq >= fromSeq)
        .map((exchange) => {
          const label = exchange.kind === 'token' && exchange.grantType ? `token:${exchange.grantType}` : exchange.kind;
          return `${label} ${exchange.status ?? exchange.error ?? '-'}`;
        });
    },
  };
}

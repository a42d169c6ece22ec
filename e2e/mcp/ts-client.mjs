/**
 * @file The official MCP TypeScript SDK client (v1) authorizing against Latchkey
 * with the SDK's own OAuth support, driven through a real browser, step by step:
 *
 * 1. connect: the guard answers 401; the SDK discovers the protected-resource
 *    metadata and the AS metadata, registers (DCR, or a CIMD URL as client_id),
 *    sends the user to authorize with PKCE and `resource`, and exchanges the code;
 * 2. list tools and call `add` (and `whoami`), and prove GET (SSE) and DELETE
 *    pass the guard on a second session;
 * 3. force a refresh and call again on the same `Mcp-Session-Id`;
 * 4. revoke the tokens (RFC 7009) and show the next call gets 401, then what the
 *    SDK does about it (a failed refresh, then a new authorization it is refused).
 *
 * How SDK 1.32 refreshes: the transport never looks at `expires_in`; it sends the
 * stored access token and only on a 401 calls `auth()`, which refreshes when a
 * refresh token is stored (sending `resource` again) and starts a new
 * authorization if that fails with `invalid_grant`. So a refresh is forced by
 * making the guard answer 401: either the stored access token is tampered with
 * (default) or the runner waits until the token has expired at the guard.
 *
 * Invariants:
 * - Every HTTP exchange the SDK makes goes through a recording `fetch`
 *   (`lib/record.mjs`); token values are never logged or returned, only their
 *   presence and SHA-256 fingerprints for comparisons.
 * - Every step asserts what it claims; a failed assertion ends the run with an
 *   error carrying the step log and the recorded exchanges.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { approveInBrowser } from '../lib/approve.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { startCallbackServer } from '../lib/callback.mjs';
import { createRecorder } from '../lib/record.mjs';
import { redactParams } from '../lib/redact.mjs';

/** The client name the runner registers (shown on the consent page). */
export const TS_CLIENT_NAME = 'Latchkey E2E TypeScript SDK client';

/**
 * A short fingerprint of a secret, for comparing tokens without revealing them.
 *
 * @param {string} secret
 * @returns {string}
 */
export function fingerprint(secret) {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}

/**
 * Compares two strings in constant time (for `state`).
 *
 * @param {string} a
 * @param {string} b
 * @returns {boolean}
 */
function constantTimeEqual(a, b) {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Returns a token that the guard must refuse: the same shape, but one character of
 * the JWS signature (or of an opaque token) changed. A middle character is changed,
 * never the last, whose low bits may be base64url padding.
 *
 * @param {string} token
 * @returns {string}
 */
export function tamperToken(token) {
  const dot = token.lastIndexOf('.');
  const start = dot >= 0 ? dot + 1 : 0;
  const index = start + Math.floor((token.length - start) / 2);
  const original = token.charAt(index);
  const replacement = original === 'A' ? 'B' : 'A';
  return `${token.slice(0, index)}${replacement}${token.slice(index + 1)}`;
}

/**
 * An `OAuthClientProvider` (SDK 1.32) with in-memory storage that sends the user to
 * a real browser. Methods are the SDK's interface; extra members are for the runner.
 *
 * @implements {import('@modelcontextprotocol/sdk/client/auth.js').OAuthClientProvider}
 */
export class BrowserOAuthClientProvider {
  /**
   * @param {object} options
   * @param {string} options.redirectUri The loopback callback URL.
   * @param {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthClientMetadata} options.clientMetadata
   * @param {string} [options.clientMetadataUrl] An https CIMD URL for the SDK's own CIMD path.
   * @param {(url: URL) => void} options.onRedirect Called with each authorization URL.
   */
  constructor(options) {
    this._redirectUri = options.redirectUri;
    this._clientMetadata = options.clientMetadata;
    /** SEP-991: the SDK uses this as client_id when the AS advertises CIMD support. */
    this.clientMetadataUrl = options.clientMetadataUrl;
    this._onRedirect = options.onRedirect;
    /** @type {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthClientInformationMixed | undefined} */
    this._clientInformation = undefined;
    /** @type {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthTokens | undefined} */
    this._tokens = undefined;
    /** When the current tokens were saved (ms since the epoch), for `expires_in`. */
    this.tokensSavedAt = 0;
    /** @type {string | undefined} */
    this._codeVerifier = undefined;
    /** The `state` of the latest authorization request, checked on the callback. */
    this.expectedState = '';
    /** Scopes passed to `invalidateCredentials`, in order (what the SDK discarded). */
    this.invalidations = [];
    /** @type {import('@modelcontextprotocol/sdk/client/auth.js').OAuthDiscoveryState | undefined} */
    this._discoveryState = undefined;
  }

  get redirectUrl() {
    return this._redirectUri;
  }

  get clientMetadata() {
    return this._clientMetadata;
  }

  /** A fresh, unguessable `state` per authorization request (RFC 6749 §10.12). */
  state() {
    this.expectedState = randomBytes(32).toString('base64url');
    return this.expectedState;
  }

  clientInformation() {
    return this._clientInformation;
  }

  /** @param {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthClientInformationMixed} information */
  saveClientInformation(information) {
    this._clientInformation = information;
  }

  /**
   * Pre-sets client information, as an app with a known `client_id` does. Used for a
   * loopback-http CIMD URL, which SDK 1.32 refuses as `clientMetadataUrl` (https only).
   *
   * @param {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthClientInformationMixed} information
   */
  seedClientInformation(information) {
    this._clientInformation = information;
  }

  tokens() {
    return this._tokens;
  }

  /** @param {import('@modelcontextprotocol/sdk/shared/auth.js').OAuthTokens} tokens */
  saveTokens(tokens) {
    this._tokens = tokens;
    this.tokensSavedAt = Date.now();
  }

  /**
   * Replaces the stored access token (for forcing a refresh); the refresh token stays.
   *
   * @param {string} accessToken
   */
  replaceAccessToken(accessToken) {
    assert.ok(this._tokens, 'no tokens stored');
    this._tokens = { ...this._tokens, access_token: accessToken };
  }

  /** @param {URL} authorizationUrl */
  redirectToAuthorization(authorizationUrl) {
    this._onRedirect(authorizationUrl);
  }

  /** @param {string} codeVerifier */
  saveCodeVerifier(codeVerifier) {
    this._codeVerifier = codeVerifier;
  }

  codeVerifier() {
    if (this._codeVerifier === undefined) throw new Error('no PKCE code verifier saved');
    return this._codeVerifier;
  }

  /**
   * Keeps the discovery result, as a desktop client does, so `finishAuth` and later
   * refreshes go straight to the token endpoint instead of rediscovering.
   *
   * @param {import('@modelcontextprotocol/sdk/client/auth.js').OAuthDiscoveryState} state
   */
  saveDiscoveryState(state) {
    this._discoveryState = state;
  }

  discoveryState() {
    return this._discoveryState;
  }

  /** @param {'all'|'client'|'tokens'|'verifier'|'discovery'} scope */
  invalidateCredentials(scope) {
    this.invalidations.push(scope);
    if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discoveryState = undefined;
  }
}

/**
 * One entry of the step log.
 *
 * @typedef {object} StepRecord
 * @property {string} name
 * @property {boolean} ok
 * @property {Record<string, unknown>} [detail]
 * @property {string} [error]
 */

/**
 * Options for {@link runTsClient}.
 *
 * @typedef {object} TsClientOptions
 * @property {string} mcpUrl The MCP endpoint behind Latchkey's guard (the canonical resource URI).
 * @property {string} email Login email of a Latchkey user.
 * @property {string} password That user's password.
 * @property {string} [clientMetadataUrl] Use this CIMD URL as client_id instead of DCR.
 * @property {number} [redirectPort] Callback port (default: a free one). With CIMD it must
 *   match the document's redirect URI.
 * @property {(line: string) => void} [log] Progress lines (never secrets).
 * @property {'tamper-access-token'|'wait-for-expiry'} [forceRefresh] How step 3 makes the
 *   guard answer 401 (default `tamper-access-token`).
 * @property {'immediate'|'at-expiry'} [revocationEffect] When the guard refuses a revoked
 *   access token: at once (introspection) or once it expires (local JWT checks, the
 *   default; needs a short access-token lifetime and guard leeway).
 * @property {boolean} [revokeAccessToken] Also revoke the access token (default true; an AS
 *   whose JWT access tokens cannot be revoked answers `unsupported_token_type`).
 * @property {number} [maxWaitMs] Upper bound for waiting on expiry (default 120 s).
 * @property {{beforeRefresh?: (context: {provider: BrowserOAuthClientProvider, mcpUrl: string,
 *   sessionId: string|undefined}) => Promise<void>}} [hooks] `beforeRefresh` replaces the
 *   built-in `forceRefresh` strategy.
 * @property {import('../lib/browser.mjs').BrowserSession} [browser] Browser to use (default: launch one).
 * @property {string} [screenshotsPrefix] Prefix for screenshots of the login and consent pages.
 * @property {boolean} [checkIdentity] Assert `whoami` shows the guard's identity headers (default true).
 * @property {string} [scope] `scope` in the client metadata (the SDK prefers the challenge's and PRM's).
 */

/**
 * The result of a successful run.
 *
 * @typedef {object} TsClientResult
 * @property {StepRecord[]} steps The step log.
 * @property {import('../lib/record.mjs').Exchange[]} exchanges Every recorded HTTP exchange.
 * @property {string} clientId The client_id used.
 * @property {string} issuer The authorization server's issuer.
 * @property {string} resource The resource indicator sent.
 */

/** Discovery kinds whose consecutive probes (several well-known URLs) read as one step. */
const PROBED_KINDS = new Set(['prm', 'as-metadata']);

/**
 * `kind status` per exchange (`token:<grant_type>` for token requests), with
 * consecutive discovery probes of one kind collapsed into one entry carrying the
 * last status, so trying several well-known URLs reads as one discovery step.
 *
 * @param {import('../lib/record.mjs').Exchange[]} exchanges
 * @returns {string[]}
 */
export function collapsedSequence(exchanges) {
  /** @type {string[]} */
  const sequence = [];
  let previousKind = '';
  for (const exchange of exchanges) {
    const label = exchange.kind === 'token' && exchange.grantType ? `token:${exchange.grantType}` : exchange.kind;
    const entry = `${label} ${exchange.status ?? exchange.error ?? '-'}`;
    if (label === previousKind && PROBED_KINDS.has(label)) sequence[sequence.length - 1] = entry;
    else sequence.push(entry);
    previousKind = label;
  }
  return sequence;
}

/**
 * Runs the four steps with the TypeScript SDK. Resolves with the step log, or
 * rejects with an error whose `steps` and `exchanges` show how far it got.
 *
 * @param {TsClientOptions} options
 * @returns {Promise<TsClientResult>}
 */
export async function runTsClient(options) {
  const log = options.log ?? (() => undefined);
  const maxWaitMs = options.maxWaitMs ?? 120_000;
  const cimdUrl = options.clientMetadataUrl;
  /** @type {StepRecord[]} */
  const steps = [];
  const recorder = createRecorder({ mcpUrl: options.mcpUrl, cimdUrl });
  const callback = await startCallbackServer({ port: options.redirectPort ?? 0 });
  const browser = options.browser ?? (await launchBrowser());
  /** @type {Array<{client: Client, transport: StreamableHTTPClientTransport}>} */
  const connections = [];

  /** Whether a new authorization may go to the browser (false after revocation). */
  let allowAuthorization = true;
  /** @type {Promise<string> | undefined} */
  let pendingApproval;
  let authorizationRequests = 0;

  const provider = new BrowserOAuthClientProvider({
    redirectUri: callback.redirectUri,
    clientMetadata: {
      client_name: TS_CLIENT_NAME,
      redirect_uris: [callback.redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...(options.scope !== undefined ? { scope: options.scope } : {}),
    },
    clientMetadataUrl: cimdUrl !== undefined && cimdUrl.startsWith('https://') ? cimdUrl : undefined,
    onRedirect(url) {
      authorizationRequests += 1;
      const params = redactParams(Object.fromEntries(url.searchParams));
      recorder.note('authorize', 'GET', url.href, {
        requestParams: params,
        note: allowAuthorization ? 'opened in the browser' : 'refused: no new authorization after revocation',
      });
      if (!allowAuthorization) return;
      log(`authorize: opening the browser (client_id ${url.searchParams.get('client_id')})`);
      pendingApproval = approveInBrowser(url.href, {
        email: options.email,
        password: options.password,
        decision: 'approve',
        browser,
        screenshotsPrefix: options.screenshotsPrefix,
      });
      // Awaited by the runner after the SDK returns; this keeps an early failure handled.
      pendingApproval.catch(() => undefined);
    },
  });
  if (cimdUrl !== undefined && provider.clientMetadataUrl === undefined) {
    // SDK 1.32 accepts only https CIMD URLs; Latchkey's development flag allows
    // http://127.0.0.1 ones. The wire is the same as the SDK's CIMD path, which does
    // exactly this: client_id = the document URL, no registration.
    provider.seedClientInformation({ client_id: cimdUrl });
  }

  /**
   * Opens a client with the shared provider and recorder.
   *
   * @returns {{client: Client, transport: StreamableHTTPClientTransport}}
   */
  const openConnection = () => {
    const transport = new StreamableHTTPClientTransport(new URL(options.mcpUrl), {
      authProvider: provider,
      fetch: recorder.fetch,
    });
    const client = new Client({ name: 'latchkey-e2e-ts-client', version: '1.0.0' }, { capabilities: {} });
    const connection = { client, transport };
    connections.push(connection);
    return connection;
  };

  /**
   * Runs one step, recording it; failures carry the log.
   *
   * @param {string} name
   * @param {() => Promise<Record<string, unknown>>} body
   */
  const step = async (name, body) => {
    log(`step: ${name}`);
    try {
      const detail = await body();
      steps.push({ name, ok: true, detail });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      steps.push({ name, ok: false, error: message });
      const failure = new Error(`TypeScript SDK client, step "${name}" failed: ${message}`, { cause: error });
      Object.assign(failure, { steps, exchanges: recorder.exchanges });
      throw failure;
    }
  };

  const asMetadata = () => {
    const found = [...recorder.exchanges].reverse().find((e) => e.kind === 'as-metadata' && e.status === 200);
    assert.ok(found, 'no authorization server metadata was fetched');
    return /** @type {Record<string, any>} */ (found.responseJson);
  };
  const prmDocument = () => {
    const found = [...recorder.exchanges].reverse().find((e) => e.kind === 'prm' && e.status === 200);
    assert.ok(found, 'no protected resource metadata was fetched');
    return /** @type {Record<string, any>} */ (found.responseJson);
  };

  /**
   * Waits until an exchange matching `predicate` was recorded (bounded by 10 s).
   *
   * @param {(exchange: import('../lib/record.mjs').Exchange) => boolean} predicate
   * @returns {Promise<import('../lib/record.mjs').Exchange>}
   */
  const waitForExchange = async (predicate) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = recorder.exchanges.find(predicate);
      if (found) return found;
      assert.ok(Date.now() < deadline, 'the expected HTTP exchange did not happen within 10 s');
      await delay(50);
    }
  };

  /**
   * Probes the MCP endpoint with `accessToken` outside the SDK (a JSON-RPC ping on the
   * session) and returns the status and challenge. Used to wait for expiry.
   *
   * @param {string} accessToken
   * @param {string | undefined} sessionId
   */
  const probe = async (accessToken, sessionId) => {
    const response = await fetch(options.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(sessionId !== undefined ? { 'mcp-session-id': sessionId } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: `probe-${Date.now()}`, method: 'ping' }),
    });
    await response.body?.cancel();
    return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '' };
  };

  /**
   * Waits until the guard refuses `accessToken` (after its `expires_in`), bounded by `maxWaitMs`.
   *
   * @param {string} accessToken
   * @param {string | undefined} sessionId
   */
  const waitUntilRefused = async (accessToken, sessionId) => {
    const tokens = provider.tokens();
    const expiresIn = typeof tokens?.expires_in === 'number' ? tokens.expires_in : 0;
    const expiresAt = provider.tokensSavedAt + expiresIn * 1000;
    const deadline = Date.now() + maxWaitMs;
    const untilExpiry = expiresAt - Date.now();
    assert.ok(untilExpiry < maxWaitMs, `the access token lives ${expiresIn} s, longer than maxWaitMs`);
    if (untilExpiry > 0) {
      log(`waiting ${Math.ceil(untilExpiry / 1000)} s for the access token to expire`);
      await delay(untilExpiry);
    }
    for (;;) {
      const answer = await probe(accessToken, sessionId);
      if (answer.status === 401) return answer;
      assert.equal(answer.status, 200, `unexpected status ${answer.status} while waiting for expiry`);
      assert.ok(Date.now() < deadline, `the guard still accepts the token after ${maxWaitMs} ms`);
      await delay(1_000);
    }
  };

  try {
    let issuer = '';
    let resource = '';
    let clientId = '';
    /** @type {{client: Client, transport: StreamableHTTPClientTransport} | undefined} */
    let main;

    await step('connect', async () => {
      const first = openConnection();
      const connectError = await first.client.connect(first.transport).then(
        () => undefined,
        (error) => error,
      );
      assert.ok(
        connectError instanceof UnauthorizedError,
        `connecting without a token must end in the SDK's UnauthorizedError (a redirect), got ${connectError}`,
      );
      assert.equal(authorizationRequests, 1, 'the SDK must have asked for exactly one authorization');
      assert.ok(pendingApproval, 'no browser approval was started');
      const browserCallback = await pendingApproval;
      const received = await callback.nextCallback(30_000);
      assert.equal(
        fingerprint(received.url),
        fingerprint(browserCallback),
        'the callback server and the browser disagree on the callback URL',
      );
      const { code, state, iss, error } = received.params;
      assert.equal(error, undefined, `the authorization response is an error: ${error}`);
      assert.ok(code, 'the authorization response has no code');
      assert.ok(state !== undefined && constantTimeEqual(state, provider.expectedState), 'state does not match');

      const metadata = asMetadata();
      issuer = metadata.issuer;
      // RFC 9207 §2.4: iss must equal the issuer exactly; SDK 1.32 does not check it, so the runner does.
      assert.equal(iss, issuer, 'the authorization response iss is not the metadata issuer');

      // As the SDK's OAuth example does: finish on the transport that was refused, then reconnect.
      await first.transport.finishAuth(code);
      await first.transport.close();
      assert.ok(provider.tokens()?.access_token, 'finishAuth stored no access token');
      assert.ok(provider.tokens()?.refresh_token, 'no refresh token was issued');

      main = openConnection();
      await main.client.connect(main.transport);
      assert.ok(main.transport.sessionId, 'the MCP server assigned no Mcp-Session-Id');

      // The discovery sequence, probes of one kind collapsed.
      const registration = cimdUrl === undefined ? ['register 201'] : [];
      const sequence = collapsedSequence(recorder.exchanges);
      assert.deepEqual(sequence.slice(0, 6 + registration.length), [
        'mcp 401',
        'prm 200',
        'as-metadata 200',
        ...registration,
        'authorize -',
        'token:authorization_code 200',
        'mcp 200',
      ]);
      const challenge = recorder.exchanges[0]?.wwwAuthenticate ?? '';
      assert.match(challenge, /^Bearer /, 'the 401 must carry a Bearer challenge');
      assert.match(challenge, /resource_metadata="/, 'the 401 challenge has no resource_metadata');
      assert.doesNotMatch(challenge, /error=/, 'a request without a token gets no error= (RFC 6750 §3.1)');

      const prm = prmDocument();
      resource = prm.resource;
      assert.equal(resource, options.mcpUrl, 'PRM resource must be exactly the MCP URL');
      assert.equal(prm.authorization_servers?.[0], issuer, 'PRM authorization_servers[0] must equal the issuer');
      assert.ok(metadata.code_challenge_methods_supported?.includes('S256'), 'AS metadata lacks S256');
      assert.ok(metadata.response_types_supported?.includes('code'), 'AS metadata lacks response type code');

      const authorize = recorder.exchanges.find((e) => e.kind === 'authorize');
      const authorizeParams = authorize?.requestParams ?? {};
      assert.equal(authorizeParams.response_type, 'code');
      assert.equal(authorizeParams.code_challenge_method, 'S256');
      assert.ok(authorizeParams.code_challenge, 'no code_challenge');
      assert.equal(authorizeParams.redirect_uri, callback.redirectUri);
      assert.equal(authorizeParams.resource, resource, 'authorize must carry resource (RFC 8707)');
      clientId = authorizeParams.client_id ?? '';

      if (cimdUrl === undefined) {
        const register = recorder.exchanges.find((e) => e.kind === 'register');
        const registered = /** @type {Record<string, any>} */ (register?.responseJson ?? {});
        assert.equal(registered.client_id, clientId, 'authorize must use the registered client_id');
        assert.deepEqual(registered.redirect_uris, [callback.redirectUri], 'registration must echo redirect_uris');
      } else {
        assert.equal(clientId, cimdUrl, 'with CIMD the client_id is the document URL');
        assert.equal(metadata.client_id_metadata_document_supported, true, 'the AS must advertise CIMD support');
      }

      const token = recorder.exchanges.find((e) => e.kind === 'token');
      const tokenParams = token?.requestParams ?? {};
      assert.equal(tokenParams.resource, resource, 'the code exchange must carry resource');
      assert.equal(tokenParams.redirect_uri, callback.redirectUri);
      assert.equal(tokenParams.client_id, clientId, 'a public client sends client_id in the body');
      assert.ok(tokenParams.code_verifier, 'the code exchange must carry code_verifier');
      const tokenResponse = /** @type {Record<string, any>} */ (token?.responseJson ?? {});
      assert.match(String(tokenResponse.token_type), /^bearer$/i);
      assert.equal(typeof tokenResponse.expires_in, 'number', 'expires_in must be a number');

      return { sequence, clientId, issuer, resource, sessionId: main.transport.sessionId };
    });

    await step('list-and-call', async () => {
      assert.ok(main);
      const tools = await main.client.listTools();
      const names = tools.tools.map((tool) => tool.name).sort();
      assert.ok(names.includes('add'), `tool add missing from ${names.join(', ')}`);
      const sum = await main.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
      assert.deepEqual(sum.content, [{ type: 'text', text: '5' }]);
      /** @type {Record<string, unknown>} */
      let identity = {};
      if (names.includes('whoami')) {
        const whoami = await main.client.callTool({ name: 'whoami', arguments: {} });
        const text = /** @type {Array<{type: string, text?: string}>} */ (whoami.content)[0]?.text ?? '{}';
        identity = JSON.parse(text);
        if (options.checkIdentity ?? true) {
          assert.equal(identity['x-latchkey-client-id'], clientId, 'the guard must forward the client_id');
          assert.ok(identity['x-latchkey-subject'], 'the guard must forward the subject');
        }
      }
      // A second session with the same tokens: its GET (SSE) stream and its DELETE must pass the guard.
      const second = openConnection();
      await second.client.connect(second.transport);
      const secondSession = second.transport.sessionId;
      assert.ok(secondSession && secondSession !== main.transport.sessionId, 'a second session must get its own id');
      const added = await second.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
      assert.deepEqual(added.content, [{ type: 'text', text: '2' }]);
      // The SDK opens the GET stream in the background after `initialized`; wait for its answer.
      const sse = await waitForExchange(
        (e) => e.kind === 'mcp' && e.method === 'GET' && e.sessionId === secondSession && e.status !== undefined,
      );
      assert.equal(sse.status, 200, 'GET (SSE) with a token must pass the guard');
      await second.transport.terminateSession();
      await second.client.close();
      const deleted = recorder.exchanges.find(
        (e) => e.kind === 'mcp' && e.method === 'DELETE' && e.sessionId === secondSession,
      );
      assert.equal(deleted?.status, 200, 'DELETE with a token must pass the guard');
      return { tools: names, sum: '5', identity };
    });

    await step('refresh', async () => {
      assert.ok(main);
      const sessionBefore = main.transport.sessionId;
      const before = provider.tokens();
      assert.ok(before?.access_token && before.refresh_token);
      const oldAccess = before.access_token;
      const oldRefresh = before.refresh_token;
      if (options.hooks?.beforeRefresh) {
        await options.hooks.beforeRefresh({ provider, mcpUrl: options.mcpUrl, sessionId: sessionBefore });
      } else if ((options.forceRefresh ?? 'tamper-access-token') === 'tamper-access-token') {
        provider.replaceAccessToken(tamperToken(oldAccess));
      } else {
        await waitUntilRefused(oldAccess, sessionBefore);
      }
      const mark = recorder.exchanges.length + 1;
      const sum = await main.client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
      assert.deepEqual(sum.content, [{ type: 'text', text: '42' }]);
      assert.equal(main.transport.sessionId, sessionBefore, 'the session must survive the refresh');

      const since = recorder.exchanges.filter((e) => e.seq >= mark);
      const sequence = collapsedSequence(since);
      assert.equal(sequence[0], 'mcp 401', 'the refresh must be caused by a 401');
      assert.ok(sequence.includes('token:refresh_token 200'), `no successful refresh in ${sequence.join(', ')}`);
      assert.equal(sequence.at(-1), 'mcp 200', 'the call must be retried and succeed');
      assert.ok(!sequence.some((entry) => entry.startsWith('authorize') || entry.startsWith('register')));
      const refresh = since.find((e) => e.kind === 'token' && e.grantType === 'refresh_token');
      assert.equal(refresh?.requestParams?.resource, resource, 'the refresh must carry resource');
      assert.equal(refresh?.requestParams?.client_id, clientId);
      const retried = since.at(-1);
      assert.equal(retried?.sessionId, sessionBefore, 'the retried call must use the same Mcp-Session-Id');
      const after = provider.tokens();
      assert.ok(after?.access_token && after.refresh_token);
      assert.notEqual(fingerprint(after.access_token), fingerprint(oldAccess), 'a new access token is expected');
      assert.notEqual(fingerprint(after.refresh_token), fingerprint(oldRefresh), 'the refresh token must rotate');
      return { sequence, sessionId: sessionBefore };
    });

    await step('revoke', async () => {
      assert.ok(main);
      const tokens = provider.tokens();
      assert.ok(tokens?.access_token && tokens.refresh_token);
      const accessToken = tokens.access_token;
      const revocationEndpoint = asMetadata().revocation_endpoint;
      assert.ok(revocationEndpoint, 'the AS metadata has no revocation_endpoint');
      /** @type {Array<[string, string]>} */
      const toRevoke = [[tokens.refresh_token, 'refresh_token']];
      if (options.revokeAccessToken ?? true) toRevoke.push([accessToken, 'access_token']);
      for (const [token, hint] of toRevoke) {
        // RFC 7009 §2.1: a public client authenticates with its client_id only.
        const response = await recorder.fetch(revocationEndpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ token, token_type_hint: hint, client_id: clientId }),
        });
        await response.body?.cancel();
        assert.equal(response.status, 200, `revoking the ${hint} must answer 200 (RFC 7009 §2.2)`);
      }

      const sessionId = main.transport.sessionId;
      const refused =
        (options.revocationEffect ?? 'at-expiry') === 'immediate'
          ? await probe(accessToken, sessionId)
          : await waitUntilRefused(accessToken, sessionId);
      assert.equal(refused.status, 401, 'the revoked access token must be refused');
      assert.match(refused.challenge, /error="invalid_token"/, 'a refused token gets error="invalid_token"');

      allowAuthorization = false;
      const mark = recorder.exchanges.length + 1;
      const requestsBefore = authorizationRequests;
      const failure = await main.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }).then(
        () => undefined,
        (error) => error,
      );
      assert.ok(failure, 'a call after revocation must fail');
      const since = recorder.exchanges.filter((e) => e.seq >= mark);
      const sequence = collapsedSequence(since);
      assert.equal(sequence[0], 'mcp 401', 'the call must be refused with 401');
      const refresh = since.find((e) => e.kind === 'token' && e.grantType === 'refresh_token');
      assert.equal(refresh?.status, 400, 'refreshing with a revoked refresh token must fail with 400');
      assert.equal(
        /** @type {Record<string, any>} */ (refresh?.responseJson)?.error,
        'invalid_grant',
        'a revoked refresh token is invalid_grant',
      );
      assert.ok(provider.invalidations.includes('tokens'), 'the SDK must drop the tokens after invalid_grant');
      assert.equal(authorizationRequests, requestsBefore + 1, 'the SDK must start a new authorization');
      assert.ok(failure instanceof UnauthorizedError, `the SDK must surface UnauthorizedError, got ${failure}`);
      return { sequence, sdkError: failure.constructor.name };
    });

    return { steps, exchanges: recorder.exchanges, clientId, issuer, resource };
  } finally {
    for (const { client } of connections) await client.close().catch(() => undefined);
    await callback.close();
    if (options.browser === undefined) await browser.close();
  }
}

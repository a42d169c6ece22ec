/**
 * @file Checks the end-to-end fixtures themselves, with everything real and
 * nothing of Latchkey needed: the SDK MCP server (tools, DNS-rebinding protection,
 * GET SSE, DELETE) driven by the official TypeScript and Python SDK clients; the
 * loopback callback server; the Client ID Metadata Document server; headless
 * Chromium; and the approve helper against pages that honour the selector contract
 * (`form#login`, `form#consent`, `main#error`), including its CLI.
 *
 * Invariant: every test asserts observable behaviour over real loopback HTTP; a
 * missing prerequisite (Chromium, the Python venv) fails with a message saying how
 * to install it, never skips.
 */

import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify as verifySignature } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { approveInBrowser } from '../lib/approve.mjs';
import { CHROMIUM_PATH, launchBrowser, REPO_ROOT, SCREENSHOT_DIR } from '../lib/browser.mjs';
import { startCallbackServer } from '../lib/callback.mjs';
import { runToCompletion, startProcess, stopAll, waitForUrl } from '../lib/processes.mjs';
import { REDACTED, redactHeader, redactJson, redactParams, redactUrl } from '../lib/redact.mjs';
import { DOCUMENT_PATH, startClientMetadataServer } from '../fixtures/client-metadata.mjs';

const E2E_DIR = join(REPO_ROOT, 'e2e');
const VENV_PYTHON = join(process.env.E2E_VENV ?? join(REPO_ROOT, 'target', 'e2e-venv'), 'bin', 'python');
const VENV_HINT =
  'python3 -m venv target/e2e-venv && target/e2e-venv/bin/pip install -r e2e/python/requirements.txt';

/**
 * Sends a raw HTTP request (fetch cannot set `Host`) and collects the answer.
 *
 * @param {string} url
 * @param {{method?: string, headers?: Record<string, string>, body?: string, readBody?: boolean}} options
 * @returns {Promise<{status: number, headers: import('node:http').IncomingHttpHeaders, body: string}>}
 */
function rawRequest(url, options) {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: options.method ?? 'GET',
        headers: options.headers,
        setHost: options.headers?.host === undefined,
      },
      (response) => {
        if (options.readBody === false) {
          // Streams (SSE) never end by themselves: take the head and hang up.
          const result = { status: response.statusCode ?? 0, headers: response.headers, body: '' };
          response.destroy();
          resolve(result);
          return;
        }
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/** A JSON-RPC initialize request, as an SDK client sends it. */
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

after(async () => {
  await stopAll();
});

describe('redaction', () => {
  it('hides every secret but keeps its presence', () => {
    const url = redactUrl('http://127.0.0.1:1/callback?code=c0de&state=s7&iss=http%3A%2F%2Fas#frag');
    assert.ok(!url.includes('c0de') && !url.includes('s7') && !url.includes('frag'), url);
    assert.equal(new URL(url).searchParams.get('iss'), 'http://as');
    assert.equal(new URL(url).searchParams.get('code'), REDACTED);
    assert.deepEqual(redactParams({ grant_type: 'refresh_token', refresh_token: 'r', resource: 'x' }), {
      grant_type: 'refresh_token',
      refresh_token: REDACTED,
      resource: 'x',
    });
    assert.deepEqual(redactJson({ access_token: 'a', nested: [{ id_token: 'i', expires_in: 5 }] }), {
      access_token: REDACTED,
      nested: [{ id_token: REDACTED, expires_in: 5 }],
    });
    assert.equal(redactHeader('Authorization', 'Bearer eyJabc'), `Bearer ${REDACTED}`);
    assert.equal(redactHeader('content-type', 'text/html'), 'text/html');
  });
});

describe('child processes', () => {
  it('waits for a real URL, captures output, and reports exits and stops', async () => {
    const server = startProcess('mcp-server', process.execPath, [join(E2E_DIR, 'mcp', 'server.mjs'), '0'], {
      env: { ...process.env, MCP_SERVER_LOG: '1' },
    });
    const ready = await server.waitForOutput(/listening on (http:\S+)$/);
    // GET without a session is the SDK server's 400: it answers, so it is ready.
    assert.equal(await waitForUrl(ready[1] ?? '', { process: server }), 400);
    // The line is written once the response finished; give the pipe a moment to deliver it.
    for (let attempt = 0; attempt < 100 && !server.stderr().includes('GET /mcp 400'); attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(server.stderr(), /^mcp-server: GET \/mcp 400$/m, 'one line per request, without headers');
    await server.stop();
    assert.notEqual(server.child.signalCode ?? server.child.exitCode, null, 'the process has ended');
    await assert.rejects(waitForUrl(ready[1] ?? '', { process: server, timeoutMs: 2_000 }), /exited while waiting/);

    const script = 'console.log("out"); console.error("err"); process.exit(3)';
    const failing = await runToCompletion(process.execPath, ['-e', script]);
    assert.deepEqual([failing.code, failing.stdout, failing.stderr], [3, 'out\n', 'err\n']);
    const invalid = startProcess('bad-port', process.execPath, [join(E2E_DIR, 'mcp', 'server.mjs'), 'not-a-port']);
    await assert.rejects(invalid.waitForOutput(/listening/, 10_000), /exited \(code 2/);
  });
});

describe('MCP server (official TypeScript SDK)', () => {
  /** @type {string} */
  let mcpUrl;
  /** @type {import('../lib/processes.mjs').ManagedProcess} */
  let server;

  before(async () => {
    server = startProcess('mcp-server', process.execPath, [join(E2E_DIR, 'mcp', 'server.mjs'), '0']);
    const ready = await server.waitForOutput(/^mcp-server listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/);
    mcpUrl = ready[1] ?? '';
  });

  after(async () => {
    await server.stop();
  });

  it('serves add and whoami to the TypeScript SDK client without auth', async () => {
    const client = new Client({ name: 'fixtures-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl));
    await client.connect(transport);
    try {
      assert.match(transport.sessionId ?? '', /^[0-9a-f-]{36}$/, 'a stateful session has an Mcp-Session-Id');
      const tools = await client.listTools();
      assert.deepEqual(tools.tools.map((tool) => tool.name).sort(), ['add', 'whoami']);
      const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
      assert.deepEqual(sum.content, [{ type: 'text', text: '5' }]);
      const bad = await client.callTool({ name: 'add', arguments: { a: 'two', b: 3 } });
      assert.equal(bad.isError, true, 'input validation rejects a non-number');
      const whoami = await client.callTool({ name: 'whoami', arguments: {} });
      const text = /** @type {Array<{text: string}>} */ (whoami.content)[0]?.text ?? '';
      // No guard in front: no identity headers were forwarded.
      assert.deepEqual(JSON.parse(text), {
        'x-latchkey-subject': null,
        'x-latchkey-client-id': null,
        'x-latchkey-scope': null,
        'x-latchkey-issuer': null,
      });
      await transport.terminateSession();
    } finally {
      await client.close();
    }
  });

  it('echoes the identity headers a guard forwards', async () => {
    const headers = {
      ...MCP_HEADERS,
      'x-latchkey-subject': 'user-1',
      'x-latchkey-client-id': 'client-1',
      'x-latchkey-scope': 'mcp:tools',
      'x-latchkey-issuer': 'http://127.0.0.1:9/',
    };
    const client = new Client({ name: 'fixtures-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers } });
    await client.connect(transport);
    try {
      const whoami = await client.callTool({ name: 'whoami', arguments: {} });
      const text = /** @type {Array<{text: string}>} */ (whoami.content)[0]?.text ?? '';
      assert.deepEqual(JSON.parse(text), {
        'x-latchkey-subject': 'user-1',
        'x-latchkey-client-id': 'client-1',
        'x-latchkey-scope': 'mcp:tools',
        'x-latchkey-issuer': 'http://127.0.0.1:9/',
      });
      await transport.terminateSession();
    } finally {
      await client.close();
    }
  });

  it('refuses a wrong Host header (DNS-rebinding protection) and accepts the right one', async () => {
    const authority = new URL(mcpUrl).host;
    for (const wrongHost of ['evil.example', `localhost:${new URL(mcpUrl).port}`, '127.0.0.1']) {
      const refused = await rawRequest(mcpUrl, {
        method: 'POST',
        headers: { ...MCP_HEADERS, host: wrongHost },
        body: INITIALIZE,
      });
      assert.equal(refused.status, 403, `Host ${wrongHost} must be refused`);
      const error = JSON.parse(refused.body);
      assert.equal(error.error.code, -32000);
      assert.equal(error.error.message, `Invalid Host header: ${wrongHost}`);
      assert.equal(refused.headers['mcp-session-id'], undefined, 'no session for a refused request');
    }

    const accepted = await rawRequest(mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, host: authority },
      body: INITIALIZE,
    });
    assert.equal(accepted.status, 200);
    const sessionId = accepted.headers['mcp-session-id'];
    assert.equal(typeof sessionId, 'string');

    // An established session is protected too: a proxy forwarding the wrong Host is caught mid-session.
    const hijacked = await rawRequest(mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, host: 'evil.example', 'mcp-session-id': String(sessionId) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(hijacked.status, 403);
  });

  it('opens a GET (SSE) stream and ends the session with DELETE', async () => {
    const initialized = await rawRequest(mcpUrl, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(initialized.status, 200);
    const sessionId = String(initialized.headers['mcp-session-id']);
    const sessionHeaders = { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
    const notified = await rawRequest(mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...sessionHeaders },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    assert.equal(notified.status, 202);

    const stream = await rawRequest(mcpUrl, {
      method: 'GET',
      headers: { accept: 'text/event-stream', ...sessionHeaders },
      readBody: false,
    });
    assert.equal(stream.status, 200);
    assert.match(String(stream.headers['content-type']), /^text\/event-stream/);

    const noSession = await rawRequest(mcpUrl, { method: 'GET', headers: { accept: 'text/event-stream' } });
    assert.equal(noSession.status, 400, 'GET without a session is a bad request');

    const deleted = await rawRequest(mcpUrl, { method: 'DELETE', headers: sessionHeaders });
    assert.equal(deleted.status, 200);
    const afterDelete = await rawRequest(mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...sessionHeaders },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    assert.equal(afterDelete.status, 404, 'a deleted session is gone');
  });

  it('serves the official Python SDK client (smoke.py in the e2e venv)', async () => {
    assert.ok(
      existsSync(VENV_PYTHON),
      `${VENV_PYTHON} is missing: ${VENV_HINT}`,
    );
    const run = await runToCompletion(VENV_PYTHON, [join(E2E_DIR, 'python', 'smoke.py'), mcpUrl], {
      timeoutMs: 60_000,
    });
    assert.equal(run.code, 0, `smoke.py failed:\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout.trim());
    assert.equal(report.ok, true);
    assert.equal(report.sdk_version, '2.3.0');
    assert.deepEqual(report.tools, ['add', 'whoami']);
    assert.deepEqual(report.add_result, ['5']);
  });
});

describe('loopback callback server', () => {
  it('delivers each authorization response once, in order, and shows no parameter', async () => {
    const callback = await startCallbackServer();
    try {
      assert.match(callback.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      // One arriving before anyone waits is queued.
      const early = await fetch(`${callback.redirectUri}?code=first-code&state=s1&iss=http%3A%2F%2Fas.example`);
      assert.equal(early.status, 200);
      assert.match(early.headers.get('content-type') ?? '', /^text\/html/);
      assert.equal(early.headers.get('cache-control'), 'no-store');
      const page = await early.text();
      assert.match(page, /You can close this window/);
      assert.ok(!page.includes('first-code') && !page.includes('s1'), 'the page must not echo the code or state');

      const waiting = callback.nextCallback(5_000);
      const waitingForSecond = callback.nextCallback(5_000);
      await (await fetch(`${callback.redirectUri}?error=access_denied&state=s2`)).text();
      assert.deepEqual((await waiting).params, { code: 'first-code', state: 's1', iss: 'http://as.example' });
      assert.deepEqual((await waitingForSecond).params, { error: 'access_denied', state: 's2' });

      const elsewhere = await fetch(new URL('/other', callback.redirectUri));
      assert.equal(elsewhere.status, 404);
      await elsewhere.text();
      await assert.rejects(callback.nextCallback(100), /no authorization response/);
    } finally {
      await callback.close();
    }
  });
});

describe('Client ID Metadata Document server', () => {
  it('serves a document whose client_id is its exact URL, leniently without an auth method', async () => {
    const redirectUri = 'http://127.0.0.1:33418/callback';
    const metadata = await startClientMetadataServer({ redirectUris: [redirectUri] });
    try {
      assert.equal(metadata.clientId, `http://127.0.0.1:${metadata.port}${DOCUMENT_PATH}`);
      const response = await fetch(metadata.clientId, { redirect: 'manual' });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/json');
      const document = await response.json();
      assert.equal(document.client_id, metadata.clientId, 'client_id must be the exact document URL (CIMD §4)');
      assert.equal(document.client_name, 'Latchkey E2E CIMD client');
      assert.deepEqual(document.redirect_uris, [redirectUri]);
      assert.deepEqual(document.grant_types, ['authorization_code', 'refresh_token']);
      assert.deepEqual(document.response_types, ['code']);
      assert.equal('token_endpoint_auth_method' in document, false, 'the lenient default is tested');
      assert.equal('client_secret' in document, false, 'a CIMD client never has a secret');
      assert.ok(document.latchkey_e2e_unknown_member, 'an unknown member is present');
      assert.equal(metadata.fetchCount(), 1);

      const other = await fetch(new URL('/client.json/', metadata.clientId), { redirect: 'manual' });
      assert.equal(other.status, 404, 'only the exact path is served, never a redirect');
      await other.text();
      assert.equal(metadata.fetchCount(), 1);
      await assert.rejects(startClientMetadataServer({ redirectUris: [] }), /at least one redirect URI/);
    } finally {
      await metadata.close();
    }
  });
});

/**
 * A stand-in for Latchkey's pages that honours the selector contract, so the
 * approve helper's browser logic is exercised before Latchkey's pages exist.
 * One user (`user@example.test` / `correct horse`); the consent decision
 * redirects to the request's `redirect_uri` with `code`, `state` and `iss`, or
 * `error=access_denied`. `client_id=unknown` shows the error page.
 *
 * @returns {Promise<{url: string, issuer: string, close: () => Promise<void>}>}
 */
async function startContractPages() {
  let issuer = '';
  const page = (title, body) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">` +
    `<title>${title}</title></head><body>${body}</body></html>`;
  const readForm = async (request) => {
    let body = '';
    for await (const chunk of request) body += chunk;
    return new URLSearchParams(body);
  };
  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', issuer);
    const html = (status, content) => {
      response.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
      response.end(content);
    };
    if (url.pathname === '/authorize' && request.method === 'GET') {
      if (url.searchParams.get('client_id') === 'unknown') {
        html(400, page('Error', '<main id="error"><h1>Unknown client</h1><p>The client is not registered.</p></main>'));
        return;
      }
      const hidden = `<input type="hidden" name="request" value="${encodeURIComponent(url.search)}">`;
      html(
        200,
        page(
          'Sign in',
          `<form id="login" method="post" action="/login">${hidden}` +
            '<label>Email <input name="email" type="email"></label>' +
            '<label>Password <input name="password" type="password"></label>' +
            '<button type="submit">Sign in</button></form>',
        ),
      );
      return;
    }
    if (url.pathname === '/login' && request.method === 'POST') {
      const form = await readForm(request);
      const original = decodeURIComponent(form.get('request') ?? '');
      if (form.get('email') !== 'user@example.test' || form.get('password') !== 'correct horse') {
        html(
          200,
          page(
            'Sign in',
            `<p role="alert">Wrong email or password.</p><form id="login" method="post" action="/login">` +
              `<input type="hidden" name="request" value="${encodeURIComponent(original)}">` +
              '<input name="email"><input name="password" type="password">' +
              '<button type="submit">Sign in</button></form>',
          ),
        );
        return;
      }
      html(
        200,
        page(
          'Consent',
          `<form id="consent" method="post" action="/consent">` +
            `<input type="hidden" name="request" value="${encodeURIComponent(original)}">` +
            '<button name="decision" value="approve" type="submit">Allow</button>' +
            '<button name="decision" value="deny" type="submit">Deny</button></form>',
        ),
      );
      return;
    }
    if (url.pathname === '/consent' && request.method === 'POST') {
      const form = await readForm(request);
      const original = new URLSearchParams(decodeURIComponent(form.get('request') ?? ''));
      const target = new URL(original.get('redirect_uri') ?? '');
      if (form.get('decision') === 'approve') target.searchParams.set('code', 'contract-code');
      else target.searchParams.set('error', 'access_denied');
      target.searchParams.set('state', original.get('state') ?? '');
      target.searchParams.set('iss', issuer);
      response.writeHead(303, { location: target.href });
      response.end();
      return;
    }
    html(404, page('Not found', '<main id="error"><p>Not found</p></main>'));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  issuer = `http://127.0.0.1:${address.port}`;
  return {
    url: issuer,
    issuer,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections();
      }),
  };
}

describe('headless Chromium and the approve helper', () => {
  /** @type {import('../lib/browser.mjs').BrowserSession} */
  let browser;
  /** @type {Awaited<ReturnType<typeof startContractPages>>} */
  let pages;
  /** @type {import('../lib/callback.mjs').CallbackServer} */
  let callback;

  before(async () => {
    assert.ok(existsSync(CHROMIUM_PATH), `${CHROMIUM_PATH} is missing: apt-get install -y chromium chromium-driver`);
    browser = await launchBrowser();
    pages = await startContractPages();
    callback = await startCallbackServer();
  });

  after(async () => {
    await browser?.close();
    await pages?.close();
    await callback?.close();
  });

  /** @param {string} state */
  const authorizationUrl = (state, clientId = 'client-1') =>
    `${pages.url}/authorize?${new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: callback.redirectUri,
      state,
    })}`;

  it('loads a local page, collects console and page errors, and takes a screenshot', async () => {
    const page = await browser.newPage();
    const before = browser.problems.length;
    await page.goto(`${callback.redirectUri}?state=page-check`);
    assert.equal(await page.locator('main#callback-done h1').innerText(), 'Authorization complete');
    assert.deepEqual(browser.problems.slice(before), [], 'the callback page causes no browser errors');
    await callback.nextCallback(5_000);

    const path = await browser.screenshot(page, 'fixtures-callback-page');
    assert.equal(path, join(SCREENSHOT_DIR, 'fixtures-callback-page.png'));
    const png = await readFile(path);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file');

    await page.close();

    // The collectors work, so "no problems" assertions elsewhere mean something. A fresh
    // page: the callback page's CSP (default-src 'none') would block the script.
    const noisy = await browser.newPage();
    await noisy.setContent(
      '<script>console.error("fixture console error");' +
        'setTimeout(() => { throw new Error("fixture page error"); });</script>',
    );
    await noisy.waitForFunction(() => document.readyState === 'complete');
    const deadline = Date.now() + 5_000;
    while (browser.problems.length - before < 2 && Date.now() < deadline) await noisy.waitForTimeout(20);
    const seen = browser.problems.slice(before).map((problem) => `${problem.kind}: ${problem.text}`);
    assert.deepEqual(seen, ['console: fixture console error', 'pageerror: fixture page error']);
    browser.problems.splice(before);
    await noisy.close();
  });

  it('signs in and approves, returning the callback URL with code, state and iss', async () => {
    const callbackUrl = await approveInBrowser(authorizationUrl('state-approve'), {
      email: 'user@example.test',
      password: 'correct horse',
      browser,
      screenshotsPrefix: 'fixtures-approve',
    });
    const params = new URL(callbackUrl).searchParams;
    assert.equal(params.get('code'), 'contract-code');
    assert.equal(params.get('state'), 'state-approve');
    assert.equal(params.get('iss'), pages.issuer);
    const received = await callback.nextCallback(5_000);
    assert.equal(received.url, callbackUrl, 'the callback server saw the same response');
    for (const name of ['01-login', '02-consent', '03-callback']) {
      assert.ok(existsSync(join(SCREENSHOT_DIR, `fixtures-approve-${name}.png`)), `screenshot ${name}`);
    }
  });

  it('denies, returning the error response', async () => {
    const callbackUrl = await approveInBrowser(authorizationUrl('state-deny'), {
      email: 'user@example.test',
      password: 'correct horse',
      decision: 'deny',
      browser,
    });
    const params = new URL(callbackUrl).searchParams;
    assert.equal(params.get('error'), 'access_denied');
    assert.equal(params.get('code'), null);
    assert.equal(params.get('state'), 'state-deny');
    await callback.nextCallback(5_000);
  });

  it('fails on a wrong password instead of looping, and on an error page', async () => {
    await assert.rejects(
      approveInBrowser(authorizationUrl('state-wrong'), {
        email: 'user@example.test',
        password: 'wrong',
        browser,
        timeoutMs: 10_000,
      }),
      /login form came back/,
    );
    await assert.rejects(
      approveInBrowser(authorizationUrl('state-error', 'unknown'), {
        email: 'user@example.test',
        password: 'correct horse',
        browser,
        timeoutMs: 10_000,
      }),
      /error page: Unknown client The client is not registered\./,
    );
  });

  it('works as a CLI that serves the callback and prints the callback URL', async () => {
    const cliCallback = await startCallbackServer();
    const port = cliCallback.port;
    // Free the port: the CLI must listen there itself, as it does for the Python client.
    await cliCallback.close();
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const url = `${pages.url}/authorize?${new URLSearchParams({
      response_type: 'code',
      client_id: 'client-cli',
      redirect_uri: redirectUri,
      state: 'state-cli',
    })}`;
    const run = await runToCompletion(process.execPath, [join(E2E_DIR, 'lib', 'approve.mjs'), url], {
      env: { ...process.env, EMAIL: 'user@example.test', PASSWORD: 'correct horse' },
      timeoutMs: 60_000,
    });
    assert.equal(run.code, 0, `approve.mjs failed: ${run.stderr}`);
    const printed = new URL(run.stdout.trim());
    assert.equal(`${printed.origin}${printed.pathname}`, redirectUri);
    assert.equal(printed.searchParams.get('code'), 'contract-code');
    assert.equal(printed.searchParams.get('state'), 'state-cli');

    const usage = await runToCompletion(process.execPath, [join(E2E_DIR, 'lib', 'approve.mjs'), url], {
      env: { PATH: process.env.PATH ?? '' },
    });
    assert.equal(usage.code, 2, 'EMAIL and PASSWORD are required');
    assert.match(usage.stderr, /usage:/);
  });
});

/**
 * A cookie jar for `fetch`: remembers `name=value` of every `Set-Cookie` (a cleared
 * cookie is forgotten) and sends them all back. The upstream OP is one origin, so
 * paths and domains do not matter here.
 */
class CookieJar {
  /** @type {Map<string, string>} */
  cookies = new Map();

  /** @param {Response} response */
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** @returns {string} */
  header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/**
 * Verifies a compact JWS (RS256 or ES256) against a JWKS; returns the payload or
 * `undefined` when no published key with its `kid` verifies it.
 *
 * @param {string} token
 * @param {{keys: Array<Record<string, any>>}} jwks
 * @returns {Record<string, any> | undefined}
 */
function verifyWithJwks(token, jwks) {
  const [encodedHeader = '', encodedPayload = '', encodedSignature = ''] = token.split('.');
  const header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8'));
  const jwk = jwks.keys.find((key) => key.kid === header.kid);
  if (jwk === undefined || jwk.alg !== header.alg) return undefined;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const input = Buffer.from(`${encodedHeader}.${encodedPayload}`);
  const signature = Buffer.from(encodedSignature, 'base64url');
  const valid =
    header.alg === 'ES256'
      ? verifySignature('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature)
      : verifySignature('sha256', input, key, signature);
  return valid ? JSON.parse(Buffer.from(encodedPayload, 'base64url').toString('utf8')) : undefined;
}

describe('upstream OpenID provider (fixtures/upstream-op.mjs)', () => {
  const clientId = 'latchkey';
  const clientSecret = `secret-${randomBytes(8).toString('hex')}`;
  const redirectUri = 'http://127.0.0.1:33418/login/upstream/test/callback';
  /** @type {import('../lib/processes.mjs').ManagedProcess} */
  let op;
  /** @type {string} */
  let issuer;
  /** @type {Record<string, any>} */
  let discovery;
  /** @type {{keys: Array<Record<string, any>>}} */
  let jwks;

  before(async () => {
    op = startProcess(
      'upstream-op',
      process.execPath,
      [
        join(E2E_DIR, 'fixtures', 'upstream-op.mjs'),
        '--port', '0',
        '--client-id', clientId,
        '--client-secret', clientSecret,
        '--redirect-uri', 'http://127.0.0.1:9/other',
        '--redirect-uri', redirectUri,
      ],
      { stdin: 'pipe' },
    );
    const ready = await op.waitForOutput(/^issuer: (http:\/\/127\.0\.0\.1:\d+)$/);
    issuer = ready[1] ?? '';
    discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    jwks = await (await fetch(discovery.jwks_uri)).json();
  });

  after(async () => {
    await op?.stop();
  });

  /** @param {Record<string, boolean | string>} mode */
  const setMode = async (mode) => {
    const response = await fetch(`${issuer}/__test/mode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(mode),
    });
    assert.equal(response.status, 204);
  };

  /**
   * Drives the authorization request through the sign-in form with fetch, following
   * redirects by hand and carrying the provider's cookies; returns the callback URL.
   *
   * @param {string} login
   * @param {{state: string, nonce: string, challenge: string}} request
   */
  const signIn = async (login, request) => {
    const jar = new CookieJar();
    const authorize = new URL(discovery.authorization_endpoint);
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'openid email profile',
      state: request.state,
      nonce: request.nonce,
      code_challenge: request.challenge,
      code_challenge_method: 'S256',
    }).toString();
    /** @param {string | URL} url @param {RequestInit} [init] */
    const go = async (url, init = {}) => {
      const response = await fetch(url, {
        ...init,
        redirect: 'manual',
        headers: { ...init.headers, cookie: jar.header() },
      });
      jar.store(response);
      return response;
    };
    let response = await go(authorize);
    assert.equal(response.status, 303, 'the authorization request goes to the interaction');
    const interaction = new URL(response.headers.get('location') ?? '', issuer);
    assert.match(interaction.pathname, /^\/interaction\/[\w-]+$/);
    response = await go(interaction);
    assert.equal(response.status, 200);
    const form = await response.text();
    assert.match(form, /<form id="upstream-login" method="post" action="\/interaction\/[\w-]+">/);
    assert.match(form, /<input name="login"/);
    assert.match(form, /<button type="submit"/);

    const post = (account) =>
      go(interaction, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ login: account }).toString(),
      });
    const wrong = await post('mallory');
    assert.equal(wrong.status, 200, 'an unknown account re-renders the form');
    const wrongPage = await wrong.text();
    assert.match(wrongPage, /id="upstream-error">No account named “mallory”/);
    assert.match(wrongPage, /<form id="upstream-login"/);

    response = await post(login);
    for (let hops = 0; response.status >= 300 && response.status < 400 && hops < 5; hops += 1) {
      const location = new URL(response.headers.get('location') ?? '', issuer);
      if (location.href.startsWith(redirectUri)) return location;
      await response.text();
      response = await go(location);
    }
    assert.fail(`no redirect to the client: ${response.status} ${await response.text()}`);
  };

  /**
   * One whole code flow; returns the token endpoint's response and what was sent.
   *
   * @param {string} login
   * @param {{auth?: 'basic' | 'post', secret?: string}} [options]
   */
  const codeFlow = async (login, options = {}) => {
    const verifier = randomBytes(32).toString('base64url');
    const request = {
      state: randomBytes(8).toString('base64url'),
      nonce: randomBytes(8).toString('base64url'),
      challenge: createHash('sha256').update(verifier).digest('base64url'),
    };
    const callback = await signIn(login, request);
    assert.equal(callback.searchParams.get('state'), request.state);
    assert.equal(callback.searchParams.get('iss'), issuer);
    const code = callback.searchParams.get('code') ?? '';
    assert.ok(code.length > 10, 'a code');
    const exchange = async () => {
      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
      });
      /** @type {Record<string, string>} */
      const headers = { 'content-type': 'application/x-www-form-urlencoded' };
      const secret = options.secret ?? clientSecret;
      if (options.auth === 'post') {
        form.set('client_id', clientId);
        form.set('client_secret', secret);
      } else {
        headers.authorization = `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
      }
      return fetch(discovery.token_endpoint, { method: 'POST', headers, body: form.toString() });
    };
    return { request, exchange };
  };

  it('publishes discovery and a JWKS with RS256 and ES256 keys', () => {
    assert.equal(discovery.issuer, issuer);
    assert.deepEqual(discovery.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(discovery.response_types_supported, ['code']);
    assert.deepEqual(discovery.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
    assert.ok(discovery.id_token_signing_alg_values_supported.includes('RS256'));
    assert.equal(discovery.authorization_response_iss_parameter_supported, true);
    assert.deepEqual(jwks.keys.map((key) => key.alg).sort(), ['ES256', 'RS256']);
    assert.ok(jwks.keys.every((key) => key.d === undefined), 'only public keys are published');
    assert.equal(op.stdout(), `issuer: ${issuer}\n`, 'exactly one line on stdout');
  });

  it('runs the code flow with PKCE for alice (basic auth) and verifies the ID token', async () => {
    const { request, exchange } = await codeFlow('alice');
    const response = await exchange();
    assert.equal(response.status, 200);
    const tokens = await response.json();
    assert.equal(tokens.token_type, 'Bearer');
    const claims = verifyWithJwks(tokens.id_token, jwks);
    assert.ok(claims, 'the ID token verifies against the published RS256 key');
    assert.equal(JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString()).alg, 'RS256');
    assert.equal(claims.iss, issuer);
    assert.equal(claims.aud, clientId);
    assert.equal(claims.sub, 'alice-sub-1');
    assert.equal(claims.email, 'alice@example.com');
    assert.equal(claims.email_verified, true);
    assert.equal(claims.nonce, request.nonce);
    // Userinfo answers the access token with the same identity.
    const userinfo = await fetch(discovery.userinfo_endpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    assert.equal(userinfo.status, 200);
    assert.deepEqual(
      { ...(await userinfo.json()) },
      { sub: 'alice-sub-1', email: 'alice@example.com', email_verified: true, name: 'Alice Upstream' },
    );
    // The code is single-use (and its replay revokes what it issued, RFC 6749 §4.1.2).
    const again = await exchange();
    assert.equal(again.status, 400);
    assert.equal((await again.json()).error, 'invalid_grant');
  });

  it('signs in every account afresh; bob has an unverified email; client_secret_post works', async () => {
    const expected = {
      bob: ['bob-sub-2', 'bob@example.com', false],
      carol: ['carol-sub-3', 'carol@example.com', true],
      dave: ['dave-sub-4', 'dave@example.com', true],
    };
    for (const [login, [sub, email, verified]] of Object.entries(expected)) {
      const { exchange } = await codeFlow(login, { auth: 'post' });
      const response = await exchange();
      assert.equal(response.status, 200, login);
      const claims = verifyWithJwks((await response.json()).id_token, jwks);
      assert.deepEqual([claims?.sub, claims?.email, claims?.email_verified], [sub, email, verified]);
    }
  });

  it('refuses a wrong client secret, a missing PKCE challenge and an unregistered redirect URI', async () => {
    const flow = await codeFlow('alice', { secret: 'not-the-secret' });
    const refused = await flow.exchange();
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).error, 'invalid_client');

    const base = { response_type: 'code', client_id: clientId, scope: 'openid', state: 's', nonce: 'n' };
    const noPkce = await fetch(`${discovery.authorization_endpoint}?${new URLSearchParams({ ...base, redirect_uri: redirectUri })}`, {
      redirect: 'manual',
    });
    assert.equal(noPkce.status, 303);
    assert.equal(new URL(noPkce.headers.get('location') ?? '').searchParams.get('error'), 'invalid_request');
    const badRedirect = await fetch(
      `${discovery.authorization_endpoint}?${new URLSearchParams({ ...base, redirect_uri: 'http://127.0.0.1:9/evil', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`,
      { redirect: 'manual' },
    );
    assert.equal(badRedirect.status, 400, 'never redirects to an unregistered URI');
    assert.match(await badRedirect.text(), /redirect_uri/);
  });

  it('tampers with the ID token on request: signature, nonce, aud', async () => {
    try {
      await setMode({ tamper: 'signature' });
      let flow = await codeFlow('alice');
      let tokens = await (await flow.exchange()).json();
      const [header, payload] = tokens.id_token.split('.');
      assert.equal(verifyWithJwks(tokens.id_token, jwks), undefined, 'the signature does not verify');
      const kid = JSON.parse(Buffer.from(header, 'base64url').toString()).kid;
      assert.ok(jwks.keys.some((key) => key.kid === kid), 'under the kid of a published key');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      assert.deepEqual([claims.sub, claims.nonce, claims.aud], ['alice-sub-1', flow.request.nonce, clientId]);

      await setMode({ tamper: 'nonce' });
      flow = await codeFlow('alice');
      tokens = await (await flow.exchange()).json();
      let verified = verifyWithJwks(tokens.id_token, jwks);
      assert.ok(verified, 're-signed with the real key');
      assert.notEqual(verified.nonce, flow.request.nonce);
      assert.equal(verified.aud, clientId);

      await setMode({ tamper: 'aud' });
      flow = await codeFlow('alice');
      tokens = await (await flow.exchange()).json();
      verified = verifyWithJwks(tokens.id_token, jwks);
      assert.ok(verified, 're-signed with the real key');
      assert.equal(verified.aud, 'another-client');
      assert.equal(verified.nonce, flow.request.nonce);

      assert.deepEqual(await (await fetch(`${issuer}/__test/mode`)).json(), { tamper: 'aud', down: false });
      await setMode({ tamper: 'none' });
      flow = await codeFlow('alice');
      tokens = await (await flow.exchange()).json();
      assert.equal(verifyWithJwks(tokens.id_token, jwks)?.nonce, flow.request.nonce, 'back to normal');
    } finally {
      await setMode({ tamper: 'none', down: false });
    }
  });

  it('goes down on request: the token endpoint answers 503, then the same code works', async () => {
    try {
      const flow = await codeFlow('carol');
      await setMode({ down: true });
      const down = await flow.exchange();
      assert.equal(down.status, 503);
      assert.equal((await down.json()).error, 'temporarily_unavailable');
      await setMode({ down: false });
      const up = await flow.exchange();
      assert.equal(up.status, 200, 'the code was not consumed while down');
      assert.equal(verifyWithJwks((await up.json()).id_token, jwks)?.sub, 'carol-sub-3');
    } finally {
      await setMode({ tamper: 'none', down: false });
    }
  });

  it('rejects a bad mode', async () => {
    for (const body of ['{"tamper":"everything"}', '{"down":"yes"}', 'not json', '[1]']) {
      const response = await fetch(`${issuer}/__test/mode`, { method: 'POST', body });
      assert.equal(response.status, 400, body);
      await response.text();
    }
  });

  it('answers usage errors with exit code 2 and stops when its stdin closes', async () => {
    const usage = await runToCompletion(process.execPath, [join(E2E_DIR, 'fixtures', 'upstream-op.mjs'), '--port', '0']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--client-id is required/);
    assert.equal(usage.stdout, '');

    const second = startProcess(
      'upstream-op-stdin',
      process.execPath,
      [join(E2E_DIR, 'fixtures', 'upstream-op.mjs'), '--port', '0', '--client-id', 'c', '--client-secret', 's', '--redirect-uri', redirectUri, '--id-token-alg', 'ES256'],
      { stdin: 'pipe' },
    );
    const ready = await second.waitForOutput(/^issuer: (http:\/\/127\.0\.0\.1:\d+)$/);
    const metadata = await (await fetch(`${ready[1]}/.well-known/openid-configuration`)).json();
    assert.equal(metadata.issuer, ready[1]);
    second.child.stdin?.end();
    const exit = await second.exited;
    assert.equal(exit.code, 0, 'a clean exit once stdin closed');
  });
});

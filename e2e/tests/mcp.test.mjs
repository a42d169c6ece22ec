/**
 * @file The whole MCP authorization flow with clients nobody here wrote: the official
 * TypeScript SDK client (`mcp/ts-client.mjs`) and the official Python SDK client
 * (`python/client.py`), each through real headless Chromium, against the real
 * `latchkey` binary in both deployments:
 *
 * - **separate**: `latchkey serve` (SQLite) as the authorization server and
 *   `latchkey guard` in front of the MCP server fixture (`mcp/server.mjs`);
 * - **all-in-one**: `latchkey serve --guard-upstream` (Postgres), the authorization
 *   server and the guard on one listener.
 *
 * Each run does: unauthenticated call → 401 with `resource_metadata` → protected
 * resource metadata → AS metadata → registration (dynamic client registration, or a
 * Client ID Metadata Document served on loopback, which Latchkey fetches under its
 * development flag `--allow-insecure-metadata-documents`) → authorize with PKCE
 * and `resource`, login and consent in Chromium → token → list and call tools (the
 * guard's identity headers reach the server) → refresh after the access token expired
 * (5 s lifetime; the Python SDK refreshes only by `expires_in`) → the tool still works
 * on the same `Mcp-Session-Id` → revoke → 401 again. The runners assert each step
 * from their recorded exchanges; this file asserts the step logs. The guard's
 * refusals are checked with plain `fetch`: no token → 401 without `error=`, a token
 * minted for another resource → 401 `invalid_token`, too few scopes → 403
 * `insufficient_scope`.
 *
 * The matrix: each SDK with DCR against both deployments, and each SDK once with a
 * metadata document (TypeScript against the separate guard, Python against
 * all-in-one), so both registration routes meet both clients and both deployments
 * without running every combination.
 *
 * Invariants: real processes over loopback only; the six SDK runs share one MCP
 * server and run concurrently (each has its own client, user session and MCP
 * session), so the file takes about as long as its slowest run.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../lib/browser.mjs';
import { startClientMetadataServer } from '../fixtures/client-metadata.mjs';
import { freePort, startGuard, startLatchkey } from '../lib/latchkey.mjs';
import { runToCompletion, startProcess, stopAll } from '../lib/processes.mjs';
import { runTsClient } from '../mcp/ts-client.mjs';

const E2E_DIR = join(REPO_ROOT, 'e2e');
const VENV_PYTHON = join(process.env.E2E_VENV ?? join(REPO_ROOT, 'target', 'e2e-venv'), 'bin', 'python');
const VENV_HINT =
  'cargo xtask e2e --all (or: python3 -m venv target/e2e-venv && target/e2e-venv/bin/pip install -r e2e/python/requirements.txt)';
const PASSWORD = 'mcp-e2e-password-1';
/** Access tokens live this long, so refresh and revocation-at-expiry run for real. */
const ACCESS_TOKEN_TTL = '5s';
/** The guard's clock-skew leeway: small, so expiry is seen within the test's time. */
const LEEWAY = '1s';
/** A resource the AS also issues tokens for, which no guard here protects. */
const OTHER_RESOURCE = 'http://127.0.0.1:9/other';
const NO_JWT = /eyJ[A-Za-z0-9_-]{10,}\./;

/**
 * A deployment under test.
 *
 * @typedef {object} Deployment
 * @property {string} name
 * @property {string} mcpUrl The guarded MCP endpoint (the resource).
 * @property {import('../lib/latchkey.mjs').Latchkey} server The authorization server.
 */

after(async () => {
  await stopAll();
});

describe('MCP SDK clients through Latchkey', { timeout: 240_000 }, () => {
  /** @type {import('../lib/processes.mjs').ManagedProcess} */
  let mcpServer;
  /** @type {Deployment} */
  let separate;
  /** @type {Deployment} */
  let allInOne;
  /** @type {import('../lib/latchkey.mjs').Guard} */
  let guard;
  /** @type {Array<Awaited<ReturnType<typeof startClientMetadataServer>>>} */
  const documents = [];

  before(async () => {
    assert.ok(existsSync(VENV_PYTHON), `${VENV_PYTHON} is missing: ${VENV_HINT}`);
    mcpServer = startProcess('mcp-server', process.execPath, [join(E2E_DIR, 'mcp', 'server.mjs'), '0']);
    const ready = await mcpServer.waitForOutput(/^mcp-server listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/);
    const upstream = ready[1] ?? '';

    // Separate: the guard's URL is the resource the AS issues tokens for, so its port
    // is chosen first.
    const guardPort = await freePort();
    const guardResource = `http://127.0.0.1:${guardPort}/mcp`;
    const [server, aioServer] = await Promise.all([
      startLatchkey({
        backend: 'sqlite',
        resources: [`${guardResource}=mcp,mcp:admin`, `${OTHER_RESOURCE}=mcp`],
        args: ['--access-token-ttl', ACCESS_TOKEN_TTL, '--allow-insecure-metadata-documents'],
      }),
      startLatchkey({
        backend: 'postgres',
        resources: [`${OTHER_RESOURCE}=mcp`],
        args: [
          '--access-token-ttl',
          ACCESS_TOKEN_TTL,
          '--allow-insecure-metadata-documents',
          '--guard-upstream',
          upstream,
          '--guard-scope',
          'mcp',
          '--guard-tool-scope',
          'secret=mcp:admin',
          '--guard-leeway',
          LEEWAY,
        ],
      }),
    ]);
    guard = await startGuard({
      issuer: server.issuer,
      upstream,
      port: guardPort,
      args: ['--scope', 'mcp', '--tool-scope', 'secret=mcp:admin', '--leeway', LEEWAY],
    });
    assert.equal(guard.mcpUrl, guardResource);
    separate = { name: 'separate', mcpUrl: guard.mcpUrl, server };
    const aioLine = aioServer.output().match(/^ {2}mcp: +(\S+)$/m);
    assert.ok(aioLine, `serve --guard-upstream printed no mcp: line\n${aioServer.output()}`);
    allInOne = { name: 'all-in-one', mcpUrl: aioLine[1] ?? '', server: aioServer };
    assert.equal(allInOne.mcpUrl, `${aioServer.issuer}/mcp`);
  });

  after(async () => {
    for (const document of documents) await document.close();
    await guard?.stop();
    await separate?.server.stop();
    await allInOne?.server.stop();
    await mcpServer?.stop();
  });

  /**
   * Serves a Client ID Metadata Document whose redirect URI is a loopback callback on a
   * free port, for one run.
   */
  const metadataDocument = async () => {
    const port = await freePort();
    const document = await startClientMetadataServer({ redirectUris: [`http://127.0.0.1:${port}/callback`] });
    documents.push(document);
    return { document, port };
  };
  /**
   * Runs the TypeScript SDK client against `deployment` and checks its step log.
   *
   * @param {() => Deployment} pick
   * @param {{cimd?: boolean}} [options]
   */
  const typescriptRun = (pick, options = {}) => async () => {
    const deployment = pick();
    const registration = options.cimd ? 'cimd' : 'dcr';
    const email = `ts-${registration}-${deployment.name}@example.test`;
    deployment.server.addUser(email, PASSWORD);
    const cimd = options.cimd ? await metadataDocument() : undefined;
    let result;
    try {
      result = await runTsClient({
        mcpUrl: deployment.mcpUrl,
        email,
        password: PASSWORD,
        clientMetadataUrl: cimd?.document.clientId,
        redirectPort: cimd?.port,
        // Its own Chromium: runs in parallel must not share cookies (both servers
        // are on 127.0.0.1, and cookies ignore ports) or console-error lists.
        screenshotsPrefix: `mcp-ts-${registration}-${deployment.name}`,
        forceRefresh: 'wait-for-expiry',
        revocationEffect: 'at-expiry',
        revokeAccessToken: true,
        maxWaitMs: 30_000,
      });
    } catch (error) {
      const steps = /** @type {any} */ (error).steps;
      throw new Error(`${error}\nsteps: ${JSON.stringify(steps, null, 2)}\n${deployment.server.output()}`);
    }
    assert.deepEqual(
      result.steps.map((step) => [step.name, step.ok]),
      [
        ['connect', true],
        ['list-and-call', true],
        ['refresh', true],
        ['revoke', true],
      ],
    );
    assert.equal(result.issuer, deployment.server.issuer);
    assert.equal(result.resource, deployment.mcpUrl);
    const [connect, listAndCall, refresh, revoke] = result.steps;
    const registered = cimd === undefined ? ['register 201'] : [];
    assert.deepEqual(connect?.detail?.sequence?.slice(0, 6 + registered.length), [
      'mcp 401',
      'prm 200',
      'as-metadata 200',
      ...registered,
      'authorize -',
      'token:authorization_code 200',
      'mcp 200',
    ]);
    if (cimd !== undefined) {
      assert.equal(result.clientId, cimd.document.clientId, 'the client_id is the document URL');
      assert.ok(cimd.document.fetchCount() >= 1, 'Latchkey must have fetched the metadata document');
    }
    const identity = /** @type {Record<string, any>} */ (listAndCall?.detail?.identity ?? {});
    assert.equal(identity['x-latchkey-client-id'], result.clientId);
    assert.equal(identity['x-latchkey-issuer'], deployment.server.issuer);
    assert.match(String(identity['x-latchkey-scope']), /\bmcp\b/);
    assert.equal(refresh?.detail?.sequence?.[0], 'mcp 401');
    assert.equal(refresh?.detail?.sequence?.at(-1), 'mcp 200');
    assert.equal(refresh?.detail?.sessionId, connect?.detail?.sessionId, 'the session survives the refresh');
    assert.deepEqual(revoke?.detail?.sequence, ['mcp 401', 'token:refresh_token 400', 'authorize -']);
    assert.ok(!NO_JWT.test(JSON.stringify(result.exchanges)), 'no JWT may appear in the recorded exchanges');
  };

  /**
   * Runs the Python SDK client against `deployment` and checks its report.
   *
   * @param {() => Deployment} pick
   * @param {{cimd?: boolean}} [options]
   */
  const pythonRun = (pick, options = {}) => async () => {
    const deployment = pick();
    const registration = options.cimd ? 'cimd' : 'dcr';
    const email = `py-${registration}-${deployment.name}@example.test`;
    deployment.server.addUser(email, PASSWORD);
    const cimd = options.cimd ? await metadataDocument() : undefined;
    const run = await runToCompletion(
      VENV_PYTHON,
      [
        join(E2E_DIR, 'python', 'client.py'),
        '--mcp-url',
        deployment.mcpUrl,
        ...(cimd === undefined ? [] : ['--cimd-url', cimd.document.clientId, '--redirect-port', String(cimd.port)]),
        '--refresh',
        'wait-for-expiry',
        '--revocation-effect',
        'at-expiry',
        '--screenshots-prefix',
        `mcp-py-${registration}-${deployment.name}`,
        '--max-wait',
        '30',
      ],
      { env: { ...process.env, EMAIL: email, PASSWORD, NODE: process.execPath }, timeoutMs: 150_000 },
    );
    assert.equal(run.code, 0, `client.py failed:\n${run.stdout}\n${run.stderr}\n${deployment.server.output()}`);
    const report = JSON.parse(run.stdout.trim());
    assert.equal(report.ok, true);
    assert.equal(report.sdk_version, '2.3.0');
    assert.deepEqual(
      report.steps.map((/** @type {any} */ step) => [step.name, step.ok]),
      [
        ['connect', true],
        ['list-and-call', true],
        ['refresh', true],
        ['revoke', true],
      ],
    );
    assert.equal(report.issuer, deployment.server.issuer);
    const connectSequence = report.steps[0].detail.sequence;
    const order = ['prm 200', 'as-metadata 200', ...(cimd === undefined ? ['register 201'] : []), 'token:authorization_code 200'];
    const positions = order.map((entry) => connectSequence.indexOf(entry));
    assert.ok(
      positions.every((position, index) => position >= 0 && (index === 0 || position > (positions[index - 1] ?? 0))),
      `discovery sequence ${connectSequence} does not contain ${order} in order`,
    );
    if (cimd !== undefined) {
      assert.ok(!connectSequence.includes('register 201'), 'no DCR with a metadata document');
      assert.equal(report.client_id, cimd.document.clientId, 'the client_id is the document URL');
      assert.ok(cimd.document.fetchCount() >= 1, 'Latchkey must have fetched the metadata document');
    }
    assert.deepEqual(report.steps[2].detail.sequence, ['token:refresh_token 200', 'mcp 200']);
    assert.deepEqual(report.steps[3].detail.sequence.slice(0, 2), ['token:refresh_token 400', 'mcp 401']);
    assert.ok(!NO_JWT.test(run.stdout), 'no JWT may appear in the report');
    assert.ok(!NO_JWT.test(run.stderr), 'no JWT may appear in the log');
  };

  /**
   * A client_credentials access token from `deployment`'s server for `resource`.
   *
   * @param {Deployment} deployment
   * @param {string} resource
   * @param {string} scope
   */
  const machineToken = async (deployment, resource, scope) => {
    const client = deployment.server.addClient(['--name', `machine-${deployment.name}`, '--confidential']);
    const response = await fetch(`${deployment.server.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
    });
    const body = await response.json();
    assert.equal(response.status, 200, `client_credentials failed: ${JSON.stringify(body)}`);
    return /** @type {string} */ (body.access_token);
  };

  /**
   * POSTs one JSON-RPC message to the guarded endpoint.
   *
   * @param {string} mcpUrl
   * @param {string | undefined} token
   * @param {Record<string, unknown>} message
   */
  const post = async (mcpUrl, token, message) => {
    const response = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, ...message }),
    });
    await response.body?.cancel();
    return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '' };
  };

  /**
   * The guard's refusals, checked with plain HTTP.
   *
   * @param {() => Deployment} pick
   */
  const refusals = (pick) => async () => {
    const deployment = pick();
    const initialize = {
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
    };

    const anonymous = await post(deployment.mcpUrl, undefined, initialize);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.challenge, /^Bearer /);
    assert.match(anonymous.challenge, /resource_metadata="[^"]+"/);
    assert.match(anonymous.challenge, /scope="mcp"/);
    assert.doesNotMatch(anonymous.challenge, /error=/, 'no token: no error= (RFC 6750 §3.1)');

    const elsewhere = await machineToken(deployment, OTHER_RESOURCE, 'mcp');
    const confused = await post(deployment.mcpUrl, elsewhere, initialize);
    assert.equal(confused.status, 401, 'a token for another resource must be refused');
    assert.match(confused.challenge, /error="invalid_token"/);

    const own = await machineToken(deployment, deployment.mcpUrl, 'mcp');
    const allowed = await post(deployment.mcpUrl, own, initialize);
    assert.equal(allowed.status, 200, 'a token for this resource passes');
    const stepUp = await post(deployment.mcpUrl, own, {
      method: 'tools/call',
      params: { name: 'secret', arguments: {} },
    });
    assert.equal(stepUp.status, 403, 'too few scopes is exactly 403');
    assert.match(stepUp.challenge, /error="insufficient_scope"/);
    assert.match(stepUp.challenge, /scope="[^"]*mcp:admin[^"]*"/, 'the 403 names the scope needed');

    const metadata = await fetch(
      new URL(`/.well-known/oauth-protected-resource${new URL(deployment.mcpUrl).pathname}`, deployment.mcpUrl),
    );
    assert.equal(metadata.status, 200);
    const document = await metadata.json();
    assert.equal(document.resource, deployment.mcpUrl);
    assert.deepEqual(document.authorization_servers, [deployment.server.issuer]);
  };

  describe('SDK runs', { concurrency: true }, () => {
    it('separate: TypeScript SDK, DCR', typescriptRun(() => separate));
    it('all-in-one: TypeScript SDK, DCR', typescriptRun(() => allInOne));
    it('separate: Python SDK, DCR as a native app', pythonRun(() => separate));
    it('all-in-one: Python SDK, DCR as a native app', pythonRun(() => allInOne));
    it('separate: TypeScript SDK, metadata document', typescriptRun(() => separate, { cimd: true }));
    it('all-in-one: Python SDK, metadata document', pythonRun(() => allInOne, { cimd: true }));
    it('separate: the guard refuses what it must', refusals(() => separate));
    it('all-in-one: the guard refuses what it must', refusals(() => allInOne));
  });
});

/**
 * @file Runs the OAuth-flow runners end to end — the official TypeScript SDK client
 * (`mcp/ts-client.mjs`) and the official Python SDK client (`python/client.py`),
 * each through real headless Chromium — against the reference deployment
 * (`fixtures/reference-as.mjs`: node-oidc-provider plus a bearer guard in front of
 * the e2e MCP server). This proves the runners, their assertions and the browser
 * helper work against a standards-conforming authorization server; the suite for
 * Latchkey points the same runners at Latchkey.
 *
 * Invariants: everything runs over loopback HTTP with real processes; the access
 * token lives 5 s so the expiry-driven paths (the Python SDK's refresh, a revoked
 * JWT dying at the guard) run for real within the test's time.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../lib/browser.mjs';
import { runToCompletion, startProcess, stopAll } from '../lib/processes.mjs';
import { startReferenceDeployment } from '../fixtures/reference-as.mjs';
import { runTsClient } from '../mcp/ts-client.mjs';

const E2E_DIR = join(REPO_ROOT, 'e2e');
const VENV_PYTHON = join(process.env.E2E_VENV ?? join(REPO_ROOT, 'target', 'e2e-venv'), 'bin', 'python');
const VENV_HINT =
  'python3 -m venv target/e2e-venv && target/e2e-venv/bin/pip install -r e2e/python/requirements.txt';
const EMAIL = 'runner@example.test';
const PASSWORD = 'reference-password-1';

after(async () => {
  await stopAll();
});

describe('OAuth-flow runners against the reference authorization server', { timeout: 180_000 }, () => {
  /** @type {import('../lib/processes.mjs').ManagedProcess} */
  let mcpServer;
  /** @type {Awaited<ReturnType<typeof startReferenceDeployment>>} */
  let deployment;

  before(async () => {
    mcpServer = startProcess('mcp-server', process.execPath, [join(E2E_DIR, 'mcp', 'server.mjs'), '0']);
    const ready = await mcpServer.waitForOutput(/^mcp-server listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/);
    deployment = await startReferenceDeployment({
      upstreamUrl: ready[1] ?? '',
      email: EMAIL,
      password: PASSWORD,
      accessTokenTtl: 5,
    });
  });

  after(async () => {
    await deployment?.close();
    await mcpServer?.stop();
  });

  it('TypeScript SDK: DCR, browser login and consent, tools, refresh on 401, revocation', async () => {
    const result = await runTsClient({
      mcpUrl: deployment.mcpUrl,
      email: EMAIL,
      password: PASSWORD,
      screenshotsPrefix: 'runners-ts',
      // node-oidc-provider cannot revoke its JWT access tokens (unsupported_token_type).
      revokeAccessToken: false,
      revocationEffect: 'at-expiry',
    });
    assert.deepEqual(
      result.steps.map((step) => [step.name, step.ok]),
      [
        ['connect', true],
        ['list-and-call', true],
        ['refresh', true],
        ['revoke', true],
      ],
    );
    assert.equal(result.issuer, deployment.issuer);
    assert.equal(result.resource, deployment.mcpUrl);
    const serialized = JSON.stringify(result.exchanges);
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(serialized), 'no JWT may appear in the recorded exchanges');
    assert.deepEqual(result.steps[3]?.detail?.sequence, ['mcp 401', 'token:refresh_token 400', 'authorize -']);
  });

  it('Python SDK: DCR as a native app, browser via the approve CLI, refresh at expiry, revocation', async () => {
    assert.ok(
      existsSync(VENV_PYTHON),
      `${VENV_PYTHON} is missing: ${VENV_HINT}`,
    );
    const run = await runToCompletion(
      VENV_PYTHON,
      [
        join(E2E_DIR, 'python', 'client.py'),
        '--mcp-url',
        deployment.mcpUrl,
        '--refresh',
        'wait-for-expiry',
        '--revocation-effect',
        'at-expiry',
        '--no-revoke-access-token',
        '--screenshots-prefix',
        'runners-python',
        '--max-wait',
        '60',
      ],
      { env: { ...process.env, EMAIL, PASSWORD, NODE: process.execPath }, timeoutMs: 150_000 },
    );
    assert.equal(run.code, 0, `client.py failed:\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout.trim());
    assert.equal(report.ok, true);
    assert.equal(report.sdk_version, '2.3.0');
    assert.deepEqual(
      report.steps.map((step) => [step.name, step.ok]),
      [
        ['connect', true],
        ['list-and-call', true],
        ['refresh', true],
        ['revoke', true],
      ],
    );
    assert.equal(report.issuer, deployment.issuer);
    assert.deepEqual(report.steps[2].detail.sequence, ['token:refresh_token 200', 'mcp 200']);
    assert.deepEqual(report.steps[3].detail.sequence.slice(0, 2), ['token:refresh_token 400', 'mcp 401']);
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(run.stdout), 'no JWT may appear in the report');
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(run.stderr), 'no JWT may appear in the log');
  });
});

/**
 * @file Client ID Metadata Document clients in a real headless Chromium, against the
 * real `latchkey serve` binary (with `--allow-insecure-metadata-documents`) on SQLite
 * and on Postgres. The document is served from node on loopback
 * (`e2e/fixtures/client-metadata.mjs`) with a port-less loopback redirect URI; the
 * client uses the document URL as its `client_id` without registering, completes the
 * code flow and exchanges the code. The consent page names the document's host and
 * marks the client unverified, or verified when the host is on `--trusted-client-host`.
 *
 * Invariants: nothing is mocked; each backend has its own servers and database; the
 * development flag's warning is printed in the start-up summary.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SELECTORS } from '../lib/approve.mjs';
import { describeProblems, launchBrowser } from '../lib/browser.mjs';
import { startCallbackServer } from '../lib/callback.mjs';
import { authorizationUrl, pkce, startLatchkey, tokenRequest, verifyJwt } from '../lib/latchkey.mjs';
import { stopAll } from '../lib/processes.mjs';
import { CLIENT_NAME, startClientMetadataServer } from '../fixtures/client-metadata.mjs';

const RESOURCE = 'https://mcp.example.com/mcp';
const PASSWORD = 'correct horse battery';

after(async () => {
  await stopAll();
});

/**
 * Clicks `selector` and waits for the navigation it starts; returns the final response.
 *
 * @param {import('playwright-core').Page} page
 * @param {string} selector
 */
async function submit(page, selector) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
  return response;
}

for (const backend of ['sqlite', 'postgres']) {
  describe(`Client ID Metadata Documents in Chromium (${backend})`, { timeout: 240_000 }, () => {
    /** @type {import('../lib/callback.mjs').CallbackServer} */
    let callback;
    /** @type {import('../fixtures/client-metadata.mjs').ClientMetadataServer} */
    let documents;

    before(async () => {
      callback = await startCallbackServer();
      // Port-less: the client binds an ephemeral port (RFC 8252 §7.3 any-port rule).
      documents = await startClientMetadataServer({ redirectUris: ['http://127.0.0.1/callback'] });
    });

    after(async () => {
      await callback?.close();
      await documents?.close();
    });

    /**
     * Runs the browser half of the flow for the document client on `latchkey` and
     * returns the consent page's text and the code exchange's tokens.
     *
     * @param {import('../lib/latchkey.mjs').Latchkey} latchkey
     * @param {string} email
     */
    const authorize = async (latchkey, email) => {
      latchkey.addUser(email, PASSWORD);
      const { verifier, challenge } = pkce();
      const state = `state-${Math.random().toString(36).slice(2)}`;
      const url = authorizationUrl(latchkey.issuer, {
        clientId: documents.clientId,
        redirectUri: callback.redirectUri,
        challenge,
        scope: 'files:read',
        resource: RESOURCE,
        state,
      });
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        const login = await page.goto(url, { waitUntil: 'load' });
        assert.equal(login?.status(), 200, await page.content());
        await page.fill(SELECTORS.loginEmail, email);
        await page.fill(SELECTORS.loginPassword, PASSWORD);
        const consent = await submit(page, SELECTORS.loginSubmit);
        assert.equal(consent?.status(), 200);
        await page.waitForSelector(SELECTORS.consentForm);
        const text = await page.innerText('main');
        const host = await page.innerText('.document-host .client-host');
        const badge = await page.innerText('.badge');

        const callbackSeen = callback.nextCallback(30_000);
        await submit(page, SELECTORS.approveButton);
        const received = await callbackSeen;
        const params = new URL(received.url).searchParams;
        assert.equal(params.get('state'), state);
        assert.equal(params.get('iss'), latchkey.issuer);
        const code = params.get('code') ?? '';
        assert.match(code, /^lkc_/);
        const { status, body } = await tokenRequest(latchkey.issuer, {
          grant_type: 'authorization_code',
          code,
          code_verifier: verifier,
          redirect_uri: callback.redirectUri,
          client_id: documents.clientId,
          resource: RESOURCE,
        });
        assert.equal(status, 200, JSON.stringify(body));
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
        return { text, host, badge, tokens: body };
      } finally {
        await session.close();
      }
    };

    it('completes the flow for an unverified document client and names its host', async () => {
      const latchkey = await startLatchkey({
        backend,
        resources: [`${RESOURCE}=files:read`],
        args: ['--allow-insecure-metadata-documents'],
      });
      try {
        assert.match(latchkey.output(), /WARNING: +--allow-insecure-metadata-documents is ON/);
        const metadata = await (await fetch(`${latchkey.issuer}/.well-known/oauth-authorization-server`)).json();
        assert.equal(metadata.client_id_metadata_document_supported, true);

        const fetchesBefore = documents.fetchCount();
        const { text, host, badge, tokens } = await authorize(latchkey, `cimd-${backend}@example.test`);
        assert.equal(host, '127.0.0.1');
        assert.equal(badge, 'Unverified app');
        assert.ok(text.includes(CLIENT_NAME), text);
        assert.ok(text.includes('Latchkey has not verified this app'), text);
        const claims = await verifyJwt(latchkey.issuer, tokens.access_token);
        assert.equal(claims.client_id, documents.clientId);
        assert.equal(claims.aud, RESOURCE);
        // One fetch served the authorization and the token request (the document is cached).
        assert.equal(documents.fetchCount() - fetchesBefore, 1);
      } finally {
        await latchkey.stop();
      }
    });

    it('marks a document client from an allow-listed host as verified', async () => {
      const latchkey = await startLatchkey({
        backend,
        resources: [`${RESOURCE}=files:read`],
        args: ['--allow-insecure-metadata-documents', '--trusted-client-host', '127.0.0.1'],
      });
      try {
        const { text, host, badge } = await authorize(latchkey, `trusted-${backend}@example.test`);
        assert.equal(host, '127.0.0.1');
        assert.equal(badge, 'Verified app');
        assert.ok(!text.includes('Latchkey has not verified this app'), text);
      } finally {
        await latchkey.stop();
      }
    });
  });
}

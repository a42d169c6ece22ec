/**
 * @file Signing in through an upstream OpenID provider, in a real headless Chromium,
 * against the real `latchkey serve` binary (SQLite and Postgres) configured with two
 * `[[upstream]]` tables pointing at the real node-oidc-provider fixture
 * (`fixtures/upstream-op.mjs`): `fixture` (no linking by email, no provisioning) and
 * `fixture-provision` (auto-provisioning on).
 *
 * An MCP-style client (DCR, PKCE, `resource`) starts `/authorize`; the person clicks
 * "Continue with …", signs in at the provider, approves Latchkey's consent page, and the
 * client exchanges Latchkey's code for a Latchkey JWT whose `aud` is the configured
 * resource and whose `sub` is the local user:
 * - `alice`, linked beforehand with `latchkey user link` to a local user whose email
 *   differs (so the link by subject is what decides);
 * - `carol`, unknown, through the provisioning provider: a user is created and linked;
 * - `dave`, unknown, through the strict provider: the "not allowed" page, nothing created;
 * - a tampered ID token (bad signature) is refused with a page whose "Try again" starts
 *   over for the same MCP request, which then succeeds.
 *
 * The sign-in page with the providers' buttons is saved as
 * `target/browser-screenshots/login-upstream.png` (SQLite run).
 *
 * Invariants: nothing is mocked; each backend has its own Latchkey and provider; no
 * console or page error may happen; a missing prerequisite fails with the fix.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SELECTORS } from '../lib/approve.mjs';
import { describeProblems, launchBrowser, REPO_ROOT } from '../lib/browser.mjs';
import { startCallbackServer } from '../lib/callback.mjs';
import { authorizationUrl, pkce, registerClient, startLatchkey, tokenRequest, verifyJwt } from '../lib/latchkey.mjs';
import { startProcess, stopAll } from '../lib/processes.mjs';

/** The MCP server tokens are for. */
const RESOURCE = 'https://mcp.example.com/mcp';
const PASSWORD = 'correct horse battery';
const UPSTREAM_SCRIPT = join(REPO_ROOT, 'e2e', 'fixtures', 'upstream-op.mjs');

after(async () => {
  await stopAll();
});

/**
 * A port that was free a moment ago: Latchkey's redirect URI must be known before it
 * starts, because the provider needs it at its own start.
 *
 * @returns {Promise<number>}
 */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/**
 * The browser problems other than Chromium's own console line for the one error page
 * the test navigated to on purpose (status `status`).
 *
 * @param {import('../lib/browser.mjs').BrowserSession} session
 * @param {number} status
 */
function unexpectedProblems(session, status) {
  const expected = `Failed to load resource: the server responded with a status of ${status}`;
  return session.problems.filter((problem) => !problem.text.startsWith(expected));
}

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
  describe(`upstream sign-in in Chromium (${backend})`, { timeout: 240_000 }, () => {
    const clientSecret = `upstream-${randomBytes(12).toString('hex')}`;
    /** @type {import('../lib/latchkey.mjs').Latchkey} */
    let latchkey;
    /** @type {import('../lib/processes.mjs').ManagedProcess} */
    let op;
    /** @type {string} */
    let upstreamIssuer;
    /** @type {import('../lib/callback.mjs').CallbackServer} */
    let callback;
    /** @type {string} */
    let configDir;
    const screenshots = backend === 'sqlite';

    before(async () => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      op = startProcess(
        `upstream-op-${backend}`,
        process.execPath,
        [
          UPSTREAM_SCRIPT,
          '--port', '0',
          '--client-id', 'latchkey',
          '--client-secret', clientSecret,
          '--redirect-uri', `${base}/login/upstream/fixture/callback`,
          '--redirect-uri', `${base}/login/upstream/fixture-provision/callback`,
        ],
        { stdin: 'pipe' },
      );
      upstreamIssuer = (await op.waitForOutput(/^issuer: (http:\/\/127\.0\.0\.1:\d+)$/))[1] ?? '';
      configDir = await mkdtemp(join(tmpdir(), 'latchkey-federation-'));
      const config = join(configDir, 'latchkey.toml');
      const table = (id, name, extra) =>
        `[[upstream]]\nid = "${id}"\ndisplay_name = "${name}"\nissuer = "${upstreamIssuer}"\n` +
        `client_id = "latchkey"\nclient_secret = "${clientSecret}"\n${extra}\n`;
      await writeFile(
        config,
        table('fixture', 'Upstream OP', 'auto_provision = false\nlink_by_verified_email = false') +
          table('fixture-provision', 'Upstream OP (new accounts)', 'auto_provision = true'),
      );
      latchkey = await startLatchkey({
        backend,
        resources: [`${RESOURCE}=files:read`],
        listen: `127.0.0.1:${port}`,
        args: ['--config', config],
      });
      assert.equal(latchkey.issuer, base);
      callback = await startCallbackServer();

      // Alice's local email differs from her upstream one: only the link can match her.
      latchkey.addUser('alice.local@example.test', PASSWORD);
      const linked = latchkey.cli([
        'user', 'link', '--email', 'alice.local@example.test', '--issuer', upstreamIssuer, '--subject', 'alice-sub-1',
      ]);
      assert.equal(linked.status, 0, linked.stderr);
    });

    after(async () => {
      await callback?.close();
      await latchkey?.stop();
      await op?.stop();
      if (configDir !== undefined) await rm(configDir, { recursive: true, force: true });
    });

    /** Sets the provider's fault injection. */
    const setMode = async (mode) => {
      const response = await fetch(`${upstreamIssuer}/__test/mode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(mode),
      });
      assert.equal(response.status, 204);
    };

    /** The users, as `latchkey user list --json` shows them. */
    const users = () => {
      const listed = latchkey.cli(['user', 'list', '--json']);
      assert.equal(listed.status, 0, listed.stderr);
      return JSON.parse(listed.stdout);
    };

    /** A new client (DCR, like an MCP client) and a fresh authorization request. */
    const newRequest = async () => {
      const clientId = await registerClient(latchkey.issuer, {
        redirectUri: callback.redirectUri,
        name: 'Example MCP Client',
      });
      const { verifier, challenge } = pkce();
      const state = `state-${randomBytes(6).toString('hex')}`;
      const url = authorizationUrl(latchkey.issuer, {
        clientId,
        redirectUri: callback.redirectUri,
        challenge,
        scope: 'files:read',
        resource: RESOURCE,
        state,
      });
      return { clientId, verifier, state, url };
    };

    /**
     * At the provider's page: signs in as `login`; returns the response of the page the
     * browser lands on back at Latchkey.
     *
     * @param {import('playwright-core').Page} page
     * @param {string} login
     */
    const signInUpstream = async (page, login) => {
      await page.waitForSelector('form#upstream-login');
      assert.equal(new URL(page.url()).origin, upstreamIssuer, 'the browser is at the provider');
      await page.fill('form#upstream-login input[name=login]', login);
      return submit(page, 'form#upstream-login button[type=submit]');
    };

    /**
     * Approves the consent page, takes the callback and exchanges the code; returns the
     * verified access-token claims.
     *
     * @param {import('playwright-core').Page} page
     * @param {Awaited<ReturnType<typeof newRequest>>} request
     */
    const approveAndExchange = async (page, request) => {
      await page.waitForSelector(SELECTORS.consentForm);
      assert.match(page.url(), new RegExp(`^${latchkey.issuer}/consent\\?request=`));
      const seen = callback.nextCallback(30_000);
      await submit(page, SELECTORS.approveButton);
      const params = new URL((await seen).url).searchParams;
      assert.equal(params.get('state'), request.state);
      assert.equal(params.get('iss'), latchkey.issuer);
      const code = params.get('code') ?? '';
      assert.match(code, /^lkc_/);
      const { status, body } = await tokenRequest(latchkey.issuer, {
        grant_type: 'authorization_code',
        code,
        code_verifier: request.verifier,
        redirect_uri: callback.redirectUri,
        client_id: request.clientId,
        resource: RESOURCE,
      });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.id_token, undefined, 'no ID token, upstream or other, reaches the MCP client');
      const claims = await verifyJwt(latchkey.issuer, body.access_token);
      assert.equal(claims.iss, latchkey.issuer, 'a Latchkey token, not an upstream one');
      assert.equal(claims.aud, RESOURCE);
      assert.equal(claims.client_id, request.clientId);
      return claims;
    };

    it('signs alice in through her linked identity; the MCP client gets a Latchkey token', async () => {
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        const login = await page.goto(request.url, { waitUntil: 'load' });
        assert.equal(login?.status(), 200);
        await page.waitForSelector('form#upstream-fixture button[type=submit]');
        assert.equal(await page.innerText('form#upstream-fixture button'), 'Continue with Upstream OP');
        assert.equal(
          await page.innerText('form#upstream-fixture-provision button'),
          'Continue with Upstream OP (new accounts)',
        );
        assert.ok(await page.isVisible(SELECTORS.loginForm), 'the password form is still offered');
        if (screenshots) await session.screenshot(page, 'login-upstream');

        await submit(page, 'form#upstream-fixture button[type=submit]');
        const back = await signInUpstream(page, 'alice');
        assert.equal(back?.status(), 200);
        const claims = await approveAndExchange(page, request);
        const alice = users().find((user) => user.email === 'alice.local@example.test');
        assert.ok(alice, 'alice exists');
        assert.equal(claims.sub, alice.user_id, 'the token is for the linked local user');
        assert.deepEqual(
          alice.identities.map((identity) => [identity.issuer, identity.subject]),
          [[upstreamIssuer, 'alice-sub-1']],
        );
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('provisions carol through the provider that allows it', async () => {
      assert.equal(
        users().some((user) => user.email === 'carol@example.com'),
        false,
      );
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        await page.goto(request.url, { waitUntil: 'load' });
        await submit(page, 'form#upstream-fixture-provision button[type=submit]');
        await signInUpstream(page, 'carol');
        const claims = await approveAndExchange(page, request);
        const carol = users().find((user) => user.email === 'carol@example.com');
        assert.ok(carol, 'carol was created');
        assert.equal(carol.has_password, false, 'a provisioned user has no password');
        assert.equal(claims.sub, carol.user_id);
        assert.deepEqual(
          carol.identities.map((identity) => [identity.issuer, identity.subject]),
          [[upstreamIssuer, 'carol-sub-3']],
        );
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('refuses dave, unknown and not provisioned, with the not-allowed page', async () => {
      const before = users().length;
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        await page.goto(request.url, { waitUntil: 'load' });
        await submit(page, 'form#upstream-fixture button[type=submit]');
        const refused = await signInUpstream(page, 'dave');
        assert.equal(refused?.status(), 403);
        await page.waitForSelector(SELECTORS.errorPage);
        assert.match(await page.innerText(SELECTORS.errorPage), /This account is not allowed to sign in here/);
        assert.equal(new URL(page.url()).origin, latchkey.issuer, 'never redirected to the MCP client');
        assert.equal(users().length, before, 'nobody was created');
        await assert.rejects(callback.nextCallback(500), /no authorization response/);
        const problems = unexpectedProblems(session, 403);
        assert.deepEqual(problems, [], describeProblems(problems));
      } finally {
        await session.close();
      }
    });

    it('refuses a forged ID token, then "Try again" completes the same request', async () => {
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        await page.goto(request.url, { waitUntil: 'load' });
        await setMode({ tamper: 'signature' });
        await submit(page, 'form#upstream-fixture button[type=submit]');
        const refused = await signInUpstream(page, 'alice');
        assert.equal(refused?.status(), 502);
        await page.waitForSelector(SELECTORS.errorPage);
        assert.match(await page.innerText(SELECTORS.errorPage), /could not be verified/);

        await setMode({ tamper: 'none' });
        await submit(page, 'form#upstream-retry button[type=submit]');
        await signInUpstream(page, 'alice');
        const claims = await approveAndExchange(page, request);
        const alice = users().find((user) => user.email === 'alice.local@example.test');
        assert.equal(claims.sub, alice?.user_id);
        const problems = unexpectedProblems(session, 502);
        assert.deepEqual(problems, [], describeProblems(problems));
      } finally {
        await setMode({ tamper: 'none', down: false });
        await session.close();
      }
    });
  });
}

/**
 * @file Latchkey's pages in a real headless Chromium, against the real `latchkey
 * serve` binary on SQLite and on Postgres: the whole authorization-code flow (register,
 * authorize, sign in, approve, loopback callback, code exchange, refresh, JWT audience),
 * denial, a wrong password, remembered consent, `prompt=consent`, disconnecting an app
 * from `/account`, and an error page.
 *
 * Every page's security headers are read from the navigation responses; no console
 * error or page error may happen; the login, consent, error and account pages are
 * saved as `target/browser-screenshots/{login,consent,error,account}.png` (from the
 * SQLite run) for a person to look at.
 *
 * Invariants: nothing is mocked; each backend has its own server (and its own Postgres
 * database); each test its own browser profile, client and user; a missing
 * prerequisite (Chromium, `LATCHKEY_BIN`, Postgres) fails with the fix in the message.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { approveInBrowser, SELECTORS } from '../lib/approve.mjs';
import { describeProblems, launchBrowser } from '../lib/browser.mjs';
import { startCallbackServer } from '../lib/callback.mjs';
import {
  PAGE_HEADERS,
  authorizationUrl,
  pkce,
  registerClient,
  startLatchkey,
  tokenRequest,
  verifyJwt,
} from '../lib/latchkey.mjs';
import { stopAll } from '../lib/processes.mjs';

/** The MCP server tokens are for. */
const RESOURCE = 'https://mcp.example.com/mcp';
const PASSWORD = 'correct horse battery';

after(async () => {
  await stopAll();
});

/**
 * Asserts the security headers of a page response.
 *
 * @param {import('playwright-core').Response | null} response
 * @param {string} what
 * @param {string} [formTarget] An origin the page's form may end at.
 */
async function assertPageHeaders(response, what, formTarget) {
  assert.ok(response, `${what}: no response`);
  const headers = await response.allHeaders();
  for (const [name, value] of Object.entries(PAGE_HEADERS)) {
    assert.equal(headers[name], value, `${what}: ${name}`);
  }
  const policy = headers['content-security-policy'] ?? '';
  for (const directive of [
    "default-src 'none'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    formTarget === undefined ? "form-action 'self';" : `form-action 'self' ${formTarget};`,
  ]) {
    assert.ok(policy.includes(directive), `${what}: ${directive} missing in ${policy}`);
  }
  assert.ok(!policy.includes('script-src'), `${what}: ${policy}`);
  assert.match(headers['content-type'] ?? '', /^text\/html; charset=utf-8$/);
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
  describe(`Latchkey pages in Chromium (${backend})`, { timeout: 240_000 }, () => {
    /** @type {import('../lib/latchkey.mjs').Latchkey} */
    let latchkey;
    /** @type {import('../lib/callback.mjs').CallbackServer} */
    let callback;
    let userCount = 0;
    const screenshots = backend === 'sqlite';

    before(async () => {
      latchkey = await startLatchkey({
        backend,
        resources: [`${RESOURCE}=files:read,files:write`],
        args: [
          '--scope-description',
          'files:read=Read your files',
          '--scope-description',
          'files:write=Create and change your files',
        ],
      });
      callback = await startCallbackServer();
    });

    after(async () => {
      await callback?.close();
      await latchkey?.stop();
    });

    /** A new user with {@link PASSWORD}; returns the email. */
    const newUser = () => {
      userCount += 1;
      const email = `user${userCount}@example.test`;
      latchkey.addUser(email, PASSWORD);
      return email;
    };

    /** A new client and a fresh authorization request for it. */
    const newRequest = async (extra = {}) => {
      const clientId = await registerClient(latchkey.issuer, {
        redirectUri: callback.redirectUri,
        name: 'Example MCP Client',
      });
      const { verifier, challenge } = pkce();
      const state = `state-${Math.random().toString(36).slice(2)}`;
      const url = authorizationUrl(latchkey.issuer, {
        clientId,
        redirectUri: callback.redirectUri,
        challenge,
        scope: 'files:read files:write offline_access',
        resource: RESOURCE,
        state,
        ...extra,
      });
      return { clientId, verifier, state, url };
    };

    /** Exchanges a code; returns the token response body. */
    const exchange = async (request, code) => {
      const { status, body } = await tokenRequest(latchkey.issuer, {
        grant_type: 'authorization_code',
        code,
        code_verifier: request.verifier,
        redirect_uri: callback.redirectUri,
        client_id: request.clientId,
        resource: RESOURCE,
      });
      assert.equal(status, 200, JSON.stringify(body));
      return body;
    };

    /** Asserts a callback with a code, the state and the issuer; returns the code. */
    const assertCode = (url, request) => {
      const params = new URL(url).searchParams;
      assert.equal(params.get('state'), request.state);
      assert.equal(params.get('iss'), latchkey.issuer);
      assert.equal(params.get('error'), null, url.replace(/code=[^&]+/, 'code=…'));
      const code = params.get('code') ?? '';
      assert.match(code, /^lkc_/);
      return code;
    };

    it('runs the whole flow: register, sign in, approve, callback, exchange, refresh', async () => {
      const email = newUser();
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        /** @type {Record<string, string>} */
        let loginPostHeaders = {};
        page.on('request', async (sent) => {
          if (sent.method() === 'POST' && sent.url() === `${latchkey.issuer}/login`) {
            loginPostHeaders = await sent.allHeaders();
          }
        });
        const callbackOrigin = new URL(callback.redirectUri).origin;

        const login = await page.goto(request.url, { waitUntil: 'load' });
        assert.equal(login?.status(), 200);
        await assertPageHeaders(login, 'login page', callbackOrigin);
        await page.waitForSelector(SELECTORS.loginForm);
        assert.match(await page.innerText('main'), /to continue to Example MCP Client/);
        await page.fill(SELECTORS.loginEmail, email);
        await page.fill(SELECTORS.loginPassword, PASSWORD);
        if (screenshots) await session.screenshot(page, 'login');

        const consent = await submit(page, SELECTORS.loginSubmit);
        assert.equal(consent?.status(), 200);
        assert.match(page.url(), /\/consent\?request=/);
        await assertPageHeaders(consent, 'consent page', callbackOrigin);
        // With Referrer-Policy: no-referrer, Chromium sends Origin: null on the form
        // post, with Sec-Fetch-Site: same-origin (what the server's Origin check expects).
        assert.equal(loginPostHeaders.origin, 'null', JSON.stringify(loginPostHeaders));
        assert.equal(loginPostHeaders['sec-fetch-site'], 'same-origin');
        const text = await page.innerText('main');
        for (const expected of [
          'Example MCP Client wants to access your account',
          '127.0.0.1',
          'This app runs on your computer',
          'Latchkey has not verified this app',
          'Read your files',
          'Create and change your files',
          'Stay connected when you are not using the app',
          RESOURCE,
          request.clientId,
        ]) {
          assert.ok(text.includes(expected), `consent page lacks ${expected}:\n${text}`);
        }
        assert.equal(await page.innerText('.redirect-host'), '127.0.0.1');
        if (screenshots) await session.screenshot(page, 'consent');

        const callbackSeen = callback.nextCallback(30_000);
        const landed = await submit(page, SELECTORS.approveButton);
        assert.equal(landed?.status(), 200, 'the callback page loaded: form-action allowed the redirect');
        const received = await callbackSeen;
        const code = assertCode(received.url, request);

        const tokens = await exchange(request, code);
        assert.equal(tokens.token_type, 'Bearer');
        assert.equal(tokens.scope, 'files:read files:write offline_access');
        const claims = await verifyJwt(latchkey.issuer, tokens.access_token);
        assert.equal(claims.aud, RESOURCE);
        assert.equal(claims.iss, latchkey.issuer);
        assert.equal(claims.client_id, request.clientId);

        const refreshed = await tokenRequest(latchkey.issuer, {
          grant_type: 'refresh_token',
          refresh_token: tokens.refresh_token,
          client_id: request.clientId,
          resource: RESOURCE,
        });
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
        assert.notEqual(refreshed.body.refresh_token, tokens.refresh_token);
        assert.equal((await verifyJwt(latchkey.issuer, refreshed.body.access_token)).aud, RESOURCE);

        // The stylesheet the pages use is served by Latchkey itself.
        const css = await page.request.get(`${latchkey.issuer}/static/latchkey.css`);
        assert.equal(css.status(), 200);
        assert.equal(css.headers()['content-type'], 'text/css; charset=utf-8');
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('sends access_denied back when the user denies', async () => {
      const email = newUser();
      const request = await newRequest();
      const callbackUrl = await approveInBrowser(request.url, { email, password: PASSWORD, decision: 'deny' });
      const params = new URL(callbackUrl).searchParams;
      assert.equal(params.get('error'), 'access_denied');
      assert.equal(params.get('state'), request.state);
      assert.equal(params.get('iss'), latchkey.issuer);
      assert.equal(params.get('code'), null);
      await callback.nextCallback(10_000);
    });

    it('keeps the user on the sign-in page after a wrong password', async () => {
      const email = newUser();
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        await page.goto(request.url, { waitUntil: 'load' });
        await page.fill(SELECTORS.loginEmail, email);
        await page.fill(SELECTORS.loginPassword, 'not the password');
        const again = await submit(page, SELECTORS.loginSubmit);
        assert.equal(again?.status(), 200);
        await assertPageHeaders(again, 'login page after a wrong password', new URL(callback.redirectUri).origin);
        assert.equal(await page.innerText('#login-error'), 'The email or password is incorrect.');
        assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
        assert.equal(await page.inputValue(SELECTORS.loginEmail), email, 'the email is kept');
        // The same form works with the right password.
        await page.fill(SELECTORS.loginPassword, PASSWORD);
        await submit(page, SELECTORS.loginSubmit);
        await page.waitForSelector(SELECTORS.consentForm);
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('remembers consent, and asks again with prompt=consent', async () => {
      const email = newUser();
      const session = await launchBrowser();
      try {
        const first = await newRequest();
        const firstUrl = await approveInBrowser(first.url, { email, password: PASSWORD, browser: session });
        assertCode(firstUrl, first);
        await callback.nextCallback(10_000);

        // Same client, same scopes, same browser: no page at all.
        const { verifier, challenge } = pkce();
        const again = { ...first, verifier, state: 'second-state' };
        again.url = authorizationUrl(latchkey.issuer, {
          clientId: first.clientId,
          redirectUri: callback.redirectUri,
          challenge,
          scope: 'files:read files:write offline_access',
          resource: RESOURCE,
          state: again.state,
        });
        const page = await session.newPage();
        const seen = callback.nextCallback(15_000);
        await page.goto(again.url, { waitUntil: 'load' });
        const code = assertCode((await seen).url, again);
        assert.ok(page.url().startsWith(callback.redirectUri), page.url());
        await exchange(again, code);

        // prompt=consent shows the page again.
        await page.goto(`${again.url}&prompt=consent`, { waitUntil: 'load' });
        await page.waitForSelector(SELECTORS.consentForm);
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('disconnects an app from /account, after which its refresh token fails', async () => {
      const email = newUser();
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const callbackUrl = await approveInBrowser(request.url, { email, password: PASSWORD, browser: session });
        await callback.nextCallback(10_000);
        const tokens = await exchange(request, assertCode(callbackUrl, request));

        const page = await session.newPage();
        const account = await page.goto(`${latchkey.issuer}/account`, { waitUntil: 'load' });
        await assertPageHeaders(account, 'account page');
        const text = await page.innerText('main');
        for (const expected of ['Connected apps', email, 'Example MCP Client', request.clientId, RESOURCE, 'files:read']) {
          assert.ok(text.includes(expected), `account page lacks ${expected}:\n${text}`);
        }
        if (screenshots) await session.screenshot(page, 'account');

        const after = await submit(page, 'form.revoke button[type=submit]');
        assert.equal(after?.status(), 200);
        assert.match(await page.innerText('main'), /The app was disconnected/);
        assert.ok(!(await page.innerText('main')).includes(request.clientId));

        const refused = await tokenRequest(latchkey.issuer, {
          grant_type: 'refresh_token',
          refresh_token: tokens.refresh_token,
          client_id: request.clientId,
        });
        assert.equal(refused.status, 400);
        assert.equal(refused.body.error, 'invalid_grant');

        // Signing out ends the session: /account shows the sign-in form again.
        await submit(page, '#logout button[type=submit]');
        assert.match(await page.innerText('main'), /You are signed out/);
        await page.goto(`${latchkey.issuer}/account`, { waitUntil: 'load' });
        await page.waitForSelector(SELECTORS.loginForm);
        assert.deepEqual(session.problems, [], describeProblems(session.problems));
      } finally {
        await session.close();
      }
    });

    it('shows an error page, and never redirects, for an unknown client', async () => {
      const request = await newRequest();
      const session = await launchBrowser();
      try {
        const page = await session.newPage();
        const url = request.url.replace(`client_id=${request.clientId}`, 'client_id=not-registered');
        const response = await page.goto(url, { waitUntil: 'load' });
        assert.equal(response?.status(), 400);
        await assertPageHeaders(response, 'error page');
        assert.ok(page.url().startsWith(latchkey.issuer), 'no redirect to the client');
        const text = await page.innerText(SELECTORS.errorPage);
        assert.match(text, /This app is not registered here/);
        assert.match(text, /Return to the application and try connecting again/);
        if (screenshots) await session.screenshot(page, 'error');
        // Chromium reports the 400 of the document itself as a console error; nothing
        // else may appear (no blocked resource, no CSP violation, no script error).
        const unexpected = session.problems.filter(
          (problem) => !/^Failed to load resource: the server responded with a status of 400/.test(problem.text),
        );
        assert.deepEqual(unexpected, [], describeProblems(unexpected));
      } finally {
        await session.close();
      }
    });
  });
}

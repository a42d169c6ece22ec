#!/usr/bin/env node
/**
 * @file Drives Latchkey's login and consent pages in a real browser: opens an
 * authorization URL, signs in, approves or denies, and returns the authorization
 * response the browser was redirected to (the client's loopback callback URL).
 *
 * Selector contract with Latchkey's pages (the only selectors used here):
 * - login: `form#login` with `input[name=email]`, `input[name=password]` and
 *   `button[type=submit]`;
 * - consent: `form#consent` with `button[name=decision][value=approve]` and
 *   `button[name=decision][value=deny]`;
 * - error page: `main#error`.
 *
 * Invariants:
 * - The callback is recognised by the browser's navigation request to the
 *   `redirect_uri` of the authorization URL (same origin and path), so it is
 *   captured even when nothing listens there.
 * - A page that comes back after it was submitted (wrong password, consent shown
 *   twice) is a failure, never a loop.
 * - Nothing secret is printed except, in CLI mode, the callback URL itself on
 *   stdout: that is this tool's output contract with the Python client.
 *
 * CLI: `EMAIL=… PASSWORD=… node e2e/lib/approve.mjs <authorization-url>` prints the
 * callback URL on stdout. Optional env: `DECISION` (`approve`|`deny`),
 * `SCREENSHOTS_PREFIX`, `APPROVE_SERVE_CALLBACK` (`0` to not serve the callback
 * page on a loopback `redirect_uri`), `APPROVE_TIMEOUT_MS`.
 */

import { describeProblems, launchBrowser } from './browser.mjs';
import { startCallbackServer } from './callback.mjs';
import { isMainModule } from './cli.mjs';
import { redactUrl } from './redact.mjs';

/** Selectors Latchkey's pages promise to provide (see the file comment). */
export const SELECTORS = Object.freeze({
  loginForm: 'form#login',
  loginEmail: 'form#login input[name=email]',
  loginPassword: 'form#login input[name=password]',
  loginSubmit: 'form#login button[type=submit]',
  consentForm: 'form#consent',
  approveButton: 'form#consent button[name=decision][value=approve]',
  denyButton: 'form#consent button[name=decision][value=deny]',
  errorPage: 'main#error',
});

/** Any page state the flow reacts to. */
const ANY_KNOWN_PAGE = `${SELECTORS.loginForm}, ${SELECTORS.consentForm}, ${SELECTORS.errorPage}`;

/** At most this many pages (login, consent, and interstitials) before giving up. */
const MAX_STEPS = 8;

/**
 * Options for {@link approveInBrowser}.
 *
 * @typedef {object} ApproveOptions
 * @property {string} email The user's email for the login form.
 * @property {string} password The user's password for the login form.
 * @property {'approve'|'deny'} [decision] The consent decision (default `approve`).
 * @property {string} [screenshotsPrefix] File-name prefix for screenshots of each page (none if unset).
 * @property {import('./browser.mjs').BrowserSession} [browser] A session to reuse (its
 *   cookies then carry a sign-in over to the next authorization); otherwise a fresh
 *   browser is launched and closed.
 * @property {boolean} [serveCallback] Serve a loopback `redirect_uri` here (for callers
 *   that run no callback server of their own, like the CLI). Default `false`.
 * @property {boolean} [allowBrowserProblems] Do not fail on console or page errors.
 * @property {number} [timeoutMs] Per-page timeout (default 30 s).
 */

/**
 * Returns `true` when `candidate` targets the same origin and path as `redirectUri`.
 *
 * @param {string} candidate
 * @param {URL} redirectUri
 * @returns {boolean}
 */
function isRedirectTarget(candidate, redirectUri) {
  try {
    const url = new URL(candidate);
    return url.origin === redirectUri.origin && url.pathname === redirectUri.pathname;
  } catch {
    return false;
  }
}

/**
 * Returns `true` for an http redirect URI on a loopback host (RFC 8252 §7.3).
 *
 * @param {URL} url
 * @returns {boolean}
 */
function isLoopbackHttp(url) {
  return url.protocol === 'http:' && ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
}

/**
 * Opens `authorizationUrl`, signs in, decides on consent and returns the callback URL
 * (with `code`, `state` and `iss`, or `error` for a denial).
 *
 * @param {string} authorizationUrl The authorization request URL the OAuth client built.
 * @param {ApproveOptions} options
 * @returns {Promise<string>} The callback URL. It contains the code: never log it.
 */
export async function approveInBrowser(authorizationUrl, options) {
  const { email, password } = options;
  const decision = options.decision ?? 'approve';
  if (decision !== 'approve' && decision !== 'deny') {
    throw new Error(`decision must be 'approve' or 'deny', got ${JSON.stringify(decision)}`);
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const redirectParam = new URL(authorizationUrl).searchParams.get('redirect_uri');
  if (redirectParam === null) {
    throw new Error(`authorization URL has no redirect_uri: ${redactUrl(authorizationUrl)}`);
  }
  const redirectUri = new URL(redirectParam);

  const session = options.browser ?? (await launchBrowser());
  const ownsSession = options.browser === undefined;
  const problemsBefore = session.problems.length;
  let callbackServer;
  let page;
  try {
    if (options.serveCallback && isLoopbackHttp(redirectUri)) {
      callbackServer = await startCallbackServer({ port: Number(redirectUri.port || 80), path: redirectUri.pathname });
    }
    page = await session.newPage();
    const currentPage = page;
    let step = 0;
    const screenshot = async (name) => {
      if (options.screenshotsPrefix === undefined) return;
      step += 1;
      await session.screenshot(currentPage, `${options.screenshotsPrefix}-${String(step).padStart(2, '0')}-${name}`);
    };

    /** @type {string | undefined} */
    let callbackUrl;
    // Registered before the first navigation: the server may redirect straight to the
    // callback (an existing sign-in with remembered consent).
    const callbackSeen = currentPage
      .waitForRequest(
        (request) =>
          request.isNavigationRequest() &&
          request.frame() === currentPage.mainFrame() &&
          isRedirectTarget(request.url(), redirectUri),
        { timeout: timeoutMs * MAX_STEPS },
      )
      .then((request) => {
        callbackUrl = request.url();
        return callbackUrl;
      });
    // The race losers below must not turn into unhandled rejections.
    callbackSeen.catch(() => undefined);

    /**
     * Runs `action` (a click) and waits until the main frame navigated or the callback was requested.
     *
     * @param {() => Promise<void>} action
     */
    const submitAndWait = async (action) => {
      const navigated = currentPage.waitForEvent('framenavigated', {
        predicate: (frame) => frame === currentPage.mainFrame(),
        timeout: timeoutMs,
      });
      navigated.catch(() => undefined);
      await action();
      await Promise.race([navigated, callbackSeen]);
    };

    try {
      await currentPage.goto(authorizationUrl, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
    } catch (error) {
      // A navigation straight to an unserved callback fails in the browser; that is still a callback.
      if (callbackUrl === undefined) throw error;
    }

    let loginSubmitted = false;
    let consentSubmitted = false;
    for (let round = 0; round < MAX_STEPS && callbackUrl === undefined; round += 1) {
      const pageShown = currentPage.waitForSelector(ANY_KNOWN_PAGE, { state: 'attached', timeout: timeoutMs });
      pageShown.catch(() => undefined);
      try {
        await Promise.race([pageShown, callbackSeen]);
      } catch (error) {
        await screenshot('unrecognised').catch(() => undefined);
        throw new Error(
          `no login, consent or error page and no callback at ${redactUrl(currentPage.url())}: ${String(error)}`,
        );
      }
      if (callbackUrl !== undefined) break;

      const errorPage = await currentPage.$(SELECTORS.errorPage);
      if (errorPage !== null) {
        await screenshot('error');
        const text = (await errorPage.innerText()).trim().replace(/\s+/g, ' ');
        throw new Error(`the authorization server showed an error page: ${text}`);
      }
      if ((await currentPage.$(SELECTORS.loginForm)) !== null) {
        if (loginSubmitted) {
          await screenshot('login-again');
          throw new Error('the login form came back after signing in: wrong email or password?');
        }
        await currentPage.locator(SELECTORS.loginEmail).fill(email);
        await currentPage.locator(SELECTORS.loginPassword).fill(password);
        await screenshot('login');
        loginSubmitted = true;
        await submitAndWait(() => currentPage.locator(SELECTORS.loginSubmit).click());
        continue;
      }
      if ((await currentPage.$(SELECTORS.consentForm)) !== null) {
        if (consentSubmitted) {
          await screenshot('consent-again');
          throw new Error('the consent form came back after a decision was submitted');
        }
        await screenshot('consent');
        consentSubmitted = true;
        const button = decision === 'approve' ? SELECTORS.approveButton : SELECTORS.denyButton;
        await submitAndWait(() => currentPage.locator(button).click());
        continue;
      }
    }
    if (callbackUrl === undefined) {
      await screenshot('stuck').catch(() => undefined);
      throw new Error(`no callback to ${redirectUri.origin}${redirectUri.pathname} after ${MAX_STEPS} pages`);
    }

    // The callback page itself, when someone serves it; an unserved one is a browser error page.
    await currentPage.waitForLoadState('load', { timeout: 5_000 }).catch(() => undefined);
    await screenshot('callback').catch(() => undefined);

    const problems = session.problems.slice(problemsBefore);
    if (problems.length > 0 && !options.allowBrowserProblems) {
      throw new Error(`the browser reported errors during authorization:\n${describeProblems(problems)}`);
    }
    return callbackUrl;
  } finally {
    await page?.close().catch(() => undefined);
    await callbackServer?.close();
    if (ownsSession) await session.close();
  }
}

/**
 * The CLI: prints the callback URL for the authorization URL in argv.
 *
 * @returns {Promise<number>} The exit status.
 */
async function main() {
  const authorizationUrl = process.argv[2];
  const email = process.env.EMAIL;
  const password = process.env.PASSWORD;
  if (authorizationUrl === undefined || email === undefined || password === undefined) {
    process.stderr.write('usage: EMAIL=… PASSWORD=… node e2e/lib/approve.mjs <authorization-url>\n');
    return 2;
  }
  const decision = process.env.DECISION ?? 'approve';
  if (decision !== 'approve' && decision !== 'deny') {
    process.stderr.write(`DECISION must be approve or deny, got ${decision}\n`);
    return 2;
  }
  try {
    const callbackUrl = await approveInBrowser(authorizationUrl, {
      email,
      password,
      decision,
      screenshotsPrefix: process.env.SCREENSHOTS_PREFIX,
      serveCallback: process.env.APPROVE_SERVE_CALLBACK !== '0',
      timeoutMs: process.env.APPROVE_TIMEOUT_MS ? Number(process.env.APPROVE_TIMEOUT_MS) : undefined,
    });
    process.stdout.write(`${callbackUrl}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`approve: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (isMainModule(import.meta.url)) {
  process.exitCode = await main();
}

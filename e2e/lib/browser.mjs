/**
 * @file A real headless Chromium for end-to-end tests, driven by playwright-core.
 *
 * Invariants:
 * - The browser is Debian's Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`);
 *   playwright-core never downloads a browser of its own.
 * - Every session starts from a fresh, empty profile (a new browser context), so
 *   no cookie, session or remembered consent leaks from one test to another.
 * - Console errors and uncaught page errors of every page are collected, so tests
 *   can assert there are none.
 * - Screenshots go under `<repo>/target/browser-screenshots/`, which is ignored by
 *   git; file names are sanitised so a caller cannot write outside that folder.
 */

import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { redactUrl } from './redact.mjs';

/** The repository root (this file lives in `<repo>/e2e/lib/`). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where screenshots are written. */
export const SCREENSHOT_DIR = join(REPO_ROOT, 'target', 'browser-screenshots');

/** The Chromium executable: Debian's package unless `CHROMIUM_PATH` says otherwise. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags for a quiet, deterministic headless Chromium on a shared CI machine:
 * no sandbox (tests run as root in a container), no GPU, no QUIC, and none of the
 * background traffic (updates, sync, first-run pages) a desktop browser makes.
 */
export const CHROMIUM_ARGS = Object.freeze([
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/**
 * A console message or page error seen in the browser.
 *
 * @typedef {object} BrowserProblem
 * @property {'console'|'pageerror'} kind Where it came from.
 * @property {string} text The message.
 * @property {string} url The page URL at the time, with secret parameters redacted.
 */

/**
 * A launched browser with a fresh profile.
 *
 * @typedef {object} BrowserSession
 * @property {import('playwright-core').Browser} browser The browser.
 * @property {import('playwright-core').BrowserContext} context The fresh context (profile).
 * @property {() => Promise<import('playwright-core').Page>} newPage Opens a page whose errors are collected.
 * @property {BrowserProblem[]} problems Console errors and page errors so far, across all pages.
 * @property {(page: import('playwright-core').Page, name: string) => Promise<string>} screenshot
 *   Saves a full-page PNG and returns its path.
 * @property {() => Promise<void>} close Closes the context and the browser.
 */

/**
 * Turns `name` into a safe file name: letters, digits, `.`, `_` and `-` only.
 *
 * @param {string} name
 * @returns {string}
 */
export function safeFileName(name) {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[.-]+/, '');
  return cleaned === '' ? 'screenshot' : cleaned;
}

/**
 * Launches headless Chromium with a fresh profile.
 *
 * @param {{headless?: boolean}} [options]
 * @returns {Promise<BrowserSession>}
 */
export async function launchBrowser(options = {}) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: options.headless ?? true,
    args: [...CHROMIUM_ARGS],
  });
  try {
    const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1024, height: 768 } });
    /** @type {BrowserProblem[]} */
    const problems = [];
    const watch = (page) => {
      page.on('console', (message) => {
        if (message.type() === 'error') {
          problems.push({ kind: 'console', text: message.text(), url: redactUrl(page.url()) });
        }
      });
      page.on('pageerror', (error) => {
        problems.push({ kind: 'pageerror', text: error.message, url: redactUrl(page.url()) });
      });
    };
    // Pages opened by the site itself (popups) are watched too.
    context.on('page', watch);
    return {
      browser,
      context,
      problems,
      async newPage() {
        // The context's 'page' listener above attaches the watchers.
        return context.newPage();
      },
      async screenshot(page, name) {
        await mkdir(SCREENSHOT_DIR, { recursive: true });
        const path = join(SCREENSHOT_DIR, `${safeFileName(name)}.png`);
        await page.screenshot({ path, fullPage: true });
        return path;
      },
      async close() {
        await context.close().catch(() => undefined);
        await browser.close();
      },
    };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/**
 * Formats collected problems for an assertion message.
 *
 * @param {BrowserProblem[]} problems
 * @returns {string}
 */
export function describeProblems(problems) {
  return problems.map((problem) => `${problem.kind} at ${problem.url}: ${problem.text}`).join('\n');
}

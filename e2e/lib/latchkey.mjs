/**
 * @file Runs the real `latchkey` binary for end-to-end tests and speaks OAuth to it
 * with plain `fetch`: a server on a free loopback port with its own data directory
 * (SQLite) or its own Postgres database, users made with `latchkey user add
 * --password-stdin`, dynamic client registration, PKCE, the token endpoint, and JWT
 * verification against the published JWKS.
 *
 * Invariants:
 * - The binary is the one named by `LATCHKEY_BIN` (set by `cargo xtask`); without it
 *   the tests fail with the command to build it, never skip.
 * - Each server gets a fresh temporary data directory; a Postgres server gets a
 *   database created for it (`psql`, from `DATABASE_URL`) and dropped when it stops.
 * - Processes are stopped by their own handle (see `processes.mjs`), never by name.
 * - Passwords go to the binary on standard input only; codes, tokens and verifiers
 *   are never printed.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess } from './processes.mjs';

/** The binary under test. */
export function latchkeyBinary() {
  const binary = process.env.LATCHKEY_BIN;
  if (!binary) {
    throw new Error(
      'LATCHKEY_BIN is not set: run `cargo xtask e2e`, or `cargo build -p latchkey` and ' +
        'LATCHKEY_BIN=target/debug/latchkey node --test e2e/tests/authorize.test.mjs',
    );
  }
  return binary;
}

/** The Postgres server databases are created on. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * `url` with its database name replaced.
 *
 * @param {string} url
 * @param {string} database
 * @returns {string}
 */
function withDatabase(url, database) {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.href;
}

/**
 * Runs one SQL statement on the maintenance database with `psql`.
 *
 * @param {string} sql
 */
function psql(sql) {
  const result = spawnSync('psql', ['--no-psqlrc', '--quiet', '--set', 'ON_ERROR_STOP=1', '--command', sql, DATABASE_URL], {
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(`psql failed (${sql}): ${result.error?.message ?? ''}${result.stderr}`);
  }
}

/**
 * A running Latchkey.
 *
 * @typedef {object} Latchkey
 * @property {string} issuer The issuer it printed (`http://127.0.0.1:<port>`).
 * @property {string} backend `sqlite` or `postgres`.
 * @property {(email: string, password: string) => void} addUser Runs `latchkey user add`.
 * @property {(args: string[]) => {status: number | null, stdout: string, stderr: string}} cli
 *   Runs another command of the binary (`user link …`, `user list --json`) on the same storage.
 * @property {(args: string[]) => Record<string, any>} addClient Runs `latchkey client add
 *   --json` with `args` and returns the registration (with `client_secret` when confidential).
 * @property {() => string} output Its captured output, for failure messages.
 * @property {() => Promise<void>} stop Stops it (SIGTERM) and removes its data.
 */

/**
 * Starts `latchkey serve` on a free loopback port.
 *
 * @param {{backend: 'sqlite'|'postgres', resources: string[], args?: string[], listen?: string}} options
 *   `listen` defaults to `127.0.0.1:0` (a free port); a fixed one lets a test tell an
 *   upstream provider the redirect URI before Latchkey starts.
 * @returns {Promise<Latchkey>}
 */
export async function startLatchkey(options) {
  const binary = latchkeyBinary();
  const dataDir = await mkdtemp(join(tmpdir(), 'latchkey-e2e-'));
  let database;
  const storage = ['--data-dir', dataDir];
  if (options.backend === 'postgres') {
    database = `latchkey_e2e_${randomBytes(6).toString('hex')}`;
    psql(`CREATE DATABASE ${database}`);
    storage.push('--database-url', withDatabase(DATABASE_URL, database));
  }
  const env = latchkeyEnv();
  const cleanUp = async () => {
    await rm(dataDir, { recursive: true, force: true });
    if (database !== undefined) psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  };
  const args = ['serve', '--listen', options.listen ?? '127.0.0.1:0', ...storage];
  for (const resource of options.resources) args.push('--resource', resource);
  args.push(...(options.args ?? []));
  const server = startProcess(`latchkey-${options.backend}`, binary, args, { env });
  let issuer;
  try {
    const match = await server.waitForOutput(/^ {2}issuer: +(http:\/\/127\.0\.0\.1:\d+)$/, 60_000);
    issuer = match[1] ?? '';
    // The summary ends with the "Next:" paragraph; by then the server accepts connections.
    await server.waitForOutput(/^Next:/, 30_000);
  } catch (error) {
    await server.stop();
    await cleanUp();
    throw error;
  }
  return {
    issuer,
    backend: options.backend,
    addUser(email, password) {
      execFileSync(binary, ['user', 'add', '--email', email, '--password-stdin', ...storage], {
        input: `${password}\n`,
        env,
        stdio: ['pipe', 'ignore', 'pipe'],
      });
    },
    cli(commandArgs) {
      const result = spawnSync(binary, [...commandArgs, ...storage], { env, encoding: 'utf8' });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
    addClient(args) {
      const printed = execFileSync(binary, ['client', 'add', '--json', ...args, ...storage], {
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return JSON.parse(printed);
    },
    output: () => server.output(),
    async stop() {
      await server.stop();
      await cleanUp();
    },
  };
}

/**
 * The environment for the binary: JSON logs at `warn`, and no other `LATCHKEY_*`
 * variable from the caller's environment (they would change the configuration).
 *
 * @returns {NodeJS.ProcessEnv}
 */
function latchkeyEnv() {
  const env = { ...process.env, LATCHKEY_LOG_FORMAT: 'json', LATCHKEY_LOG: 'warn' };
  for (const name of Object.keys(env)) {
    if (name.startsWith('LATCHKEY_') && !['LATCHKEY_LOG_FORMAT', 'LATCHKEY_LOG', 'LATCHKEY_BIN'].includes(name)) {
      delete env[name];
    }
  }
  return env;
}

/**
 * A loopback port that was free a moment ago (for a process whose own URL must be
 * known before it starts, such as the guard's resource URL).
 *
 * @returns {Promise<number>}
 */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(undefined));
  });
  const address = server.address();
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * A running `latchkey guard`.
 *
 * @typedef {object} Guard
 * @property {string} mcpUrl The MCP URL it printed (`mcp:` line).
 * @property {() => string} output Its captured output.
 * @property {() => Promise<void>} stop Stops it (SIGTERM).
 */

/**
 * Starts `latchkey guard` in front of `upstream`, listening on `port`, for the resource
 * `http://127.0.0.1:<port>/mcp`, trusting `issuer`.
 *
 * @param {{issuer: string, upstream: string, port: number, args?: string[]}} options
 * @returns {Promise<Guard>}
 */
export async function startGuard(options) {
  const binary = latchkeyBinary();
  const resource = `http://127.0.0.1:${options.port}/mcp`;
  const args = [
    'guard',
    '--listen',
    `127.0.0.1:${options.port}`,
    '--upstream',
    options.upstream,
    '--resource',
    resource,
    '--issuer',
    options.issuer,
    ...(options.args ?? []),
  ];
  const guard = startProcess('latchkey-guard', binary, args, { env: latchkeyEnv() });
  try {
    const match = await guard.waitForOutput(/^ {2}mcp: +(http:\/\/127\.0\.0\.1:\d+\/\S*)$/, 30_000);
    return { mcpUrl: match[1] ?? '', output: () => guard.output(), stop: () => guard.stop() };
  } catch (error) {
    await guard.stop();
    throw error;
  }
}

/**
 * A PKCE pair (RFC 7636, S256).
 *
 * @returns {{verifier: string, challenge: string}}
 */
export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/**
 * Registers a public client with DCR (RFC 7591), as MCP clients do.
 *
 * @param {string} issuer
 * @param {{redirectUri: string, name: string}} options
 * @returns {Promise<string>} The client_id.
 */
export async function registerClient(issuer, options) {
  const response = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: options.name,
      redirect_uris: [options.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`registration failed: ${response.status} ${JSON.stringify(body)}`);
  return body.client_id;
}

/**
 * An authorization URL.
 *
 * @param {string} issuer
 * @param {{clientId: string, redirectUri: string, challenge: string, scope: string,
 *          resource: string, state: string, prompt?: string}} request
 * @returns {string}
 */
export function authorizationUrl(issuer, request) {
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: request.clientId,
    redirect_uri: request.redirectUri,
    code_challenge: request.challenge,
    code_challenge_method: 'S256',
    scope: request.scope,
    resource: request.resource,
    state: request.state,
  });
  if (request.prompt !== undefined) params.set('prompt', request.prompt);
  return `${issuer}/authorize?${params}`;
}

/**
 * A form post to the token endpoint: status and JSON body.
 *
 * @param {string} issuer
 * @param {Record<string, string>} params
 * @returns {Promise<{status: number, body: any}>}
 */
export async function tokenRequest(issuer, params) {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  return { status: response.status, body: await response.json() };
}

/**
 * Verifies an ES256 JWT against the issuer's JWKS and returns its claims.
 *
 * @param {string} issuer
 * @param {string} token
 * @returns {Promise<Record<string, any>>}
 */
export async function verifyJwt(issuer, token) {
  const [encodedHeader, encodedPayload, encodedSignature] = token.split('.');
  const header = JSON.parse(Buffer.from(encodedHeader ?? '', 'base64url').toString('utf8'));
  const jwks = await (await fetch(`${issuer}/jwks.json`)).json();
  const jwk = jwks.keys.find((key) => key.kid === header.kid);
  if (jwk === undefined) throw new Error(`kid ${header.kid} is not in the JWKS`);
  if (header.alg !== 'ES256' || header.typ !== 'at+jwt') throw new Error(`unexpected header ${JSON.stringify(header)}`);
  const valid = verify(
    'sha256',
    Buffer.from(`${encodedHeader}.${encodedPayload}`),
    { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' },
    Buffer.from(encodedSignature ?? '', 'base64url'),
  );
  if (!valid) throw new Error('the access token signature does not verify');
  return JSON.parse(Buffer.from(encodedPayload ?? '', 'base64url').toString('utf8'));
}

/** The headers every Latchkey page must send, with the exact values where fixed. */
export const PAGE_HEADERS = Object.freeze({
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
});

/**
 * @file The comparison server of `cargo xtask bench server`: node-oidc-provider
 * (npm `oidc-provider`, an OpenID-certified implementation, pinned by
 * e2e/package-lock.json) configured to issue the same kind of token as Latchkey's
 * `client_credentials` grant, so that the two can be measured with the same load.
 *
 * Shape: issuer `http://127.0.0.1:<port>` (`--port`, default 0: a free port); one
 * confidential client using `client_secret_basic` and only the `client_credentials`
 * grant; one resource (`--resource`, default `http://127.0.0.1:9/mcp`) with one scope
 * (`--scope`, default `bench:read`). Tokens for it are RFC 9068 JWTs (`typ: at+jwt`)
 * signed with ES256 and carrying `iss`, `sub`, `aud`, `client_id`, `scope`, `iat`,
 * `exp` and `jti`, which is what Latchkey issues. JWT access tokens are not stored by
 * oidc-provider, and Latchkey's `client_credentials` writes nothing either: both sides
 * sign and answer, with the client record in memory.
 *
 * Once listening, it prints one JSON line on stdout with `issuer`, `token_endpoint`,
 * `client_id`, `client_secret`, `resource` and `scope` (oidc-provider's own start-up
 * warnings go to stderr); the caller reads it from a pipe and never logs it. It stops
 * on SIGTERM or SIGINT, closing its connections.
 *
 * Run by hand: `NODE_ENV=production node e2e/bench/oidc-provider.mjs` after
 * `npm ci --prefix e2e`; `cargo xtask bench server` does both.
 *
 * Invariants: it runs only with `NODE_ENV=production`, which is how a deployment
 * runs it (the bench must not measure development mode); it is one process, and
 * Node runs its JavaScript on one thread (signing goes through jose, and a share of
 * the crypto may run on libuv's thread pool), which the bench reports by measuring
 * the CPU time it used; the client secret and signing keys are generated per start.
 */

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

if (process.env.NODE_ENV !== 'production') {
  process.stderr.write('oidc-provider bench server: run it with NODE_ENV=production, as deployed\n');
  process.exit(2);
}

const { values: options } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    resource: { type: 'string', default: 'http://127.0.0.1:9/mcp' },
    scope: { type: 'string', default: 'bench:read' },
  },
  strict: true,
});

const port = Number.parseInt(options.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`oidc-provider bench server: --port must be 0..65535, got ${options.port}\n`);
  process.exit(2);
}
const { resource, scope } = options;

// Listen first, so that the issuer names the real port when --port is 0.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', () => resolve(undefined));
});
const address = server.address();
if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
const issuer = `http://127.0.0.1:${address.port}`;

const clientId = `bench-${randomBytes(8).toString('hex')}`;
const clientSecret = randomBytes(32).toString('base64url');
const keyId = randomBytes(8).toString('hex');
const accessTokenKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
// oidc-provider signs ID tokens with RS256 by default and insists on such a key in the
// keystore at start-up even though this grant never issues an ID token.
const idTokenKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope,
    },
  ],
  jwks: {
    keys: [
      { ...accessTokenKey, kid: `ec-${keyId}`, alg: 'ES256', use: 'sig' },
      { ...idTokenKey, kid: `rsa-${keyId}`, alg: 'RS256', use: 'sig' },
    ],
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // Latchkey's default access-token lifetime, 15 minutes. Setting it also keeps
  // oidc-provider from printing a notice about the default on stdout.
  ttl: { ClientCredentials: 900 },
  scopes: [scope],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // RFC 8707: the `resource` parameter selects the audience, and the resource server
    // info makes the token an ES256-signed RFC 9068 JWT, as Latchkey's tokens are.
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== resource) throw new Provider.errors.InvalidTarget();
        return {
          scope,
          audience: resource,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
server.on('request', provider.callback());

/** Closes the listener and every open connection, then exits. */
function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

process.stdout.write(
  `${JSON.stringify({
    issuer,
    token_endpoint: `${issuer}/token`,
    client_id: clientId,
    client_secret: clientSecret,
    resource,
    scope,
  })}\n`,
);

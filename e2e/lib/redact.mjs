/**
 * @file Redaction of secrets before anything is logged, recorded or printed.
 *
 * Invariant: every value of a parameter, header or JSON member that can carry a
 * credential (tokens, codes, verifiers, secrets, passwords, assertions, cookies)
 * is replaced by {@link REDACTED}. Presence is kept, so a test can still assert
 * that, for example, a token request carried a `code_verifier`.
 */

/** What a redacted value is replaced with. */
export const REDACTED = '<redacted>';

/**
 * Parameter and JSON member names whose values are secret. Compared case-insensitively.
 * `state` is included: it is a CSRF guard (RFC 6749 §10.12) and is never needed in a log.
 */
export const SECRET_NAMES = Object.freeze(
  new Set([
    'access_token',
    'refresh_token',
    'id_token',
    'token',
    'code',
    'code_verifier',
    'client_secret',
    'client_assertion',
    'assertion',
    'password',
    'state',
    'registration_access_token',
    'device_code',
    'subject_token',
    'actor_token',
  ]),
);

/** Header names whose values are secret. Compared case-insensitively. */
export const SECRET_HEADERS = Object.freeze(new Set(['authorization', 'cookie', 'set-cookie', 'proxy-authorization']));

/**
 * Returns `true` when a parameter or member called `name` carries a secret.
 *
 * @param {string} name
 * @returns {boolean}
 */
export function isSecretName(name) {
  return SECRET_NAMES.has(name.toLowerCase());
}

/**
 * Redacts secret query parameters (and the fragment) of `url`.
 *
 * @param {string | URL} url
 * @returns {string}
 */
export function redactUrl(url) {
  let parsed;
  try {
    parsed = new URL(String(url));
  } catch {
    return String(url);
  }
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (isSecretName(name)) parsed.searchParams.set(name, REDACTED);
  }
  if (parsed.hash !== '') parsed.hash = REDACTED;
  return parsed.href;
}

/**
 * Redacts secret entries of a flat parameter object (a form body or a query).
 *
 * @param {Record<string, string>} params
 * @returns {Record<string, string>}
 */
export function redactParams(params) {
  return Object.fromEntries(
    Object.entries(params).map(([name, value]) => [name, isSecretName(name) ? REDACTED : value]),
  );
}

/**
 * Redacts a header value: `Authorization: Bearer x` keeps its scheme, loses the credential.
 *
 * @param {string} name
 * @param {string} value
 * @returns {string}
 */
export function redactHeader(name, value) {
  if (!SECRET_HEADERS.has(name.toLowerCase())) return value;
  const scheme = value.match(/^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+/);
  return scheme ? `${scheme[1]} ${REDACTED}` : REDACTED;
}

/**
 * Deeply redacts secret members of a JSON value.
 *
 * @param {unknown} value
 * @returns {unknown}
 */
export function redactJson(value) {
  if (Array.isArray(value)) return value.map(redactJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([name, member]) => [name, isSecretName(name) ? REDACTED : redactJson(member)]),
    );
  }
  return value;
}

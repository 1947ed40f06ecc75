// Test OpenID provider for the portcullis end-to-end tests.
//
//   node tests/idp/server.mjs --port 0 [--ttl SECONDS]
//
// Serves a real `oidc-provider` instance over plain HTTP on 127.0.0.1. Once
// listening it prints exactly one JSON line to stdout:
//
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT}
//
// and nothing else ever goes to stdout (all logging goes to stderr), so a test
// harness can read the port from the first line. See README.md for the
// client, resources and curl examples.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { fstatSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its NOTICEs with console.info (i.e. stdout). Route all
// console output to stderr so stdout carries only the readiness line.
console.log = console.error;
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.IDP_PORT ?? '0' },
    ttl: { type: 'string', default: process.env.IDP_ACCESS_TOKEN_TTL ?? '600' },
  },
});

const port = Number(args.port);
const accessTokenTTL = Number(args.ttl);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${args.port}`);
  process.exit(2);
}
if (!Number.isInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  console.error(`invalid --ttl ${args.ttl} (positive integer seconds)`);
  process.exit(2);
}

const CLIENT_ID = 'portcullis-test';
const CLIENT_SECRET = 'portcullis-test-secret';
const TODO_SCOPES = 'tasks:read tasks:write admin';

// Resource servers, keyed by resource indicator. oidc-provider insists that a
// resource indicator is an absolute URI (RFC 8707), so bare `todo-api` is not
// accepted as `resource=`; the `audience` field lets the token's `aud` be the
// short name nonetheless.
const RESOURCE_SERVERS = {
  // The main API: RS256 JWT access tokens with aud "todo-api".
  'urn:portcullis:todo-api': {
    audience: 'todo-api',
    scope: TODO_SCOPES,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
  // Same audience, but signed with the ES256 key (exercise a second alg/kid).
  'urn:portcullis:todo-api:es256': {
    audience: 'todo-api',
    scope: TODO_SCOPES,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
  // A different audience: validly signed tokens that todo-api must reject.
  'urn:portcullis:other-api': {
    audience: 'other-api',
    scope: TODO_SCOPES,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
  // Opaque (reference) tokens, only verifiable via the introspection endpoint.
  'urn:portcullis:opaque-api': {
    audience: 'opaque-api',
    scope: TODO_SCOPES,
    accessTokenFormat: 'opaque',
  },
};

// Fresh signing keys on every start; tests must fetch them via jwks_uri.
// The first key of an alg is the one used for signing that alg.
function signingJwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `${alg.toLowerCase()}-${randomUUID()}`,
    alg,
    use: 'sig',
  };
}
const jwks = {
  keys: [
    signingJwk('rsa', { modulusLength: 2048 }, 'RS256'),
    signingJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

// The issuer embeds the port, so bind first (port 0 = ephemeral) and only then
// build the provider and attach it as the request handler.
const server = http.createServer();
server.listen(port, '127.0.0.1');
await new Promise((resolve, reject) => {
  server.once('listening', resolve);
  server.once('error', reject);
});
const actualPort = server.address().port;
const issuer = `http://127.0.0.1:${actualPort}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    // client_secret_post is accepted too: oidc-provider treats basic/post as
    // interchangeable for a client registered with either.
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks,
  features: {
    clientCredentials: { enabled: true },
    // Any authenticated client may introspect/revoke any token (test setup;
    // also silences oidc-provider's "you SHOULD change it" notices).
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: true, allowedPolicy: async () => true },
    // No browser login flows are configured; don't expose the dev login UI.
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No `resource` => no audience => opaque token (a JWT needs an `aud`).
      defaultResource: async () => undefined,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const info = RESOURCE_SERVERS[resourceIndicator];
        if (!info) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return { ...info, accessTokenTTL };
      },
    },
  },
  // client_credentials tokens have no end-user; expose the client as `sub` so
  // both JWT payloads and introspection responses carry a subject.
  extraTokenClaims: async (_ctx, token) => (
    token.kind === 'ClientCredentials' ? { sub: token.clientId } : undefined
  ),
  ttl: {
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
  },
  // Static, test-only cookie keys (silences a warning; no cookies are used).
  cookies: { keys: ['portcullis-test-idp-cookie-key'] },
});

// Surface server-side errors (e.g. misconfiguration) on stderr.
provider.on('server_error', (_ctx, err) => console.error('server_error:', err));

server.on('request', provider.callback());

process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: actualPort })}\n`);

let shuttingDown = false;
function shutdown(reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.error(`idp: shutting down (${reason})`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Belt and braces: never linger.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// The test harness keeps a pipe on our stdin; when it dies the pipe hits EOF
// and we exit. Only watch stdin when it is a pipe/socket: a TTY or /dev/null
// (e.g. `node server.mjs &` from a script) must not stop the server.
let stdinIsPipe = false;
try {
  const st = fstatSync(0);
  stdinIsPipe = st.isFIFO() || st.isSocket();
} catch { /* no stdin at all */ }
if (stdinIsPipe) {
  process.stdin.on('data', () => {}); // discard input
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
}

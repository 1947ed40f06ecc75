// Test OpenID provider for the portcullis end-to-end tests.
//
//   node tests/idp/server.mjs --port 0 [--ttl SECONDS] [--client-jwks FILE]
//
// Serves a real `oidc-provider` instance over plain HTTP on 127.0.0.1. Once
// listening it prints exactly one JSON line to stdout:
//
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT}
//
// and nothing else ever goes to stdout (all logging goes to stderr), so a test
// harness can read the port from the first line. See README.md for the
// clients, resources, browser sign-in and curl examples.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { fstatSync, readFileSync } from 'node:fs';
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
    // Public JWKS of the private_key_jwt web client; without it that client
    // is not registered.
    'client-jwks': { type: 'string' },
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

let clientJwks;
if (args['client-jwks'] !== undefined) {
  try {
    clientJwks = JSON.parse(readFileSync(args['client-jwks'], 'utf8'));
  } catch (err) {
    console.error(`invalid --client-jwks ${args['client-jwks']}: ${err.message}`);
    process.exit(2);
  }
}

const CLIENT_ID = 'portcullis-test';
const CLIENT_SECRET = 'portcullis-test-secret';
const TODO_SCOPES = 'tasks:read tasks:write admin';

// Browser sign-in clients (authorization code + PKCE). The proxy's port is
// only known at test time, so their redirect URIs are matched by pattern
// (see redirectUriAllowed below); the placeholders registered here (port 1)
// are only there because oidc-provider wants at least one.
const WEB_CLIENT_ID = 'portcullis-web';
const WEB_CLIENT_SECRET = 'portcullis-web-secret';
const WEB_JWT_CLIENT_ID = 'portcullis-web-jwt';
const WEB_CLIENT_IDS = new Set([WEB_CLIENT_ID, WEB_JWT_CLIENT_ID]);
const webClientMetadata = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1:1/.portcullis/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1:1/'],
};
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost']);

// http://127.0.0.1:<port><path> or http://localhost:<port><path>, with an
// explicit port and no fragment; `path` restricts the path when given.
function loopbackUri(value, path) {
  if (typeof value !== 'string') return false;
  const url = URL.parse(value);
  if (!url || url.protocol !== 'http:' || !LOOPBACK_HOSTS.has(url.hostname)) return false;
  if (url.port === '' || url.hash !== '' || url.username !== '' || url.password !== '') return false;
  // URL.parse normalises (dot segments, default ports); insist the text was
  // already in normal form (a bare origin aside) so what is allowed is what
  // gets redirected to.
  if (url.href !== value && url.href !== `${value}/`) return false;
  return path === undefined || (url.pathname === path && url.search === '');
}

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

const clients = [{
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
  // client_secret_post is accepted too: oidc-provider treats basic/post as
  // interchangeable for a client registered with either.
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
}, {
  client_id: WEB_CLIENT_ID,
  client_secret: WEB_CLIENT_SECRET,
  // client_secret_post works too (see the note above).
  token_endpoint_auth_method: 'client_secret_basic',
  ...webClientMetadata,
}];
if (clientJwks) {
  clients.push({
    client_id: WEB_JWT_CLIENT_ID,
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: clientJwks,
    ...webClientMetadata,
  });
}

// The signed-in user: any login name is an account whose id (`sub`) is
// that name. Claims go to the ID token and userinfo as the scopes allow.
async function findAccount(_ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: `${sub}@example.test`,
        email_verified: true,
        name: `${sub.charAt(0).toUpperCase()}${sub.slice(1)}`,
        preferred_username: sub,
      };
    },
  };
}

// No consent page: for the web clients, grant whatever the authorization
// request asks for (OIDC scopes, claims, and each requested resource's
// scopes), on top of what an earlier sign-in in this session granted.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!WEB_CLIENT_IDS.has(oidc.client.clientId)) return grant;
  if (!grant || grant.accountId !== oidc.account.accountId) {
    grant = new oidc.provider.Grant({ accountId: oidc.account.accountId, clientId: oidc.client.clientId });
  }
  const oidcScopes = [...oidc.requestParamOIDCScopes];
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [indicator, resourceServer] of Object.entries(oidc.resourceServers)) {
    const scopes = [...oidc.requestParamScopes].filter((scope) => resourceServer.scopes.has(scope));
    if (scopes.length) grant.addResourceScope(indicator, scopes.join(' '));
  }
  await grant.save();
  return grant;
}

// RP-initiated logout without the "Do you want to sign out?" question: the
// confirmation form (already carrying its xsrf token) is submitted with
// logout=yes by an inline script, as soon as the page loads. HTTP-only test
// clients submit the same form themselves (tests/harness/signin.rs).
async function logoutSource(ctx, form) {
  const autoForm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  ctx.body = `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Signing out</title>
  <script>document.addEventListener('DOMContentLoaded', function () { document.forms[0].submit() });</script>
</head>
<body>
  ${autoForm}
  <noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
</body>
</html>`;
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Signed out</title></head>
<body><h1 id="signed-out">Signed out</h1></body></html>`;
}

const provider = new Provider(issuer, {
  clients,
  jwks,
  findAccount,
  loadExistingGrant,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put the scopes' claims in the ID token itself, not only in userinfo.
  conformIdTokenClaims: false,
  // Every code exchange of a client allowed the refresh_token grant gets a
  // refresh token (by default only with the offline_access scope).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // Every refresh rotates: the answer carries a new refresh token and the
  // old one is spent (using it again revokes the whole grant).
  rotateRefreshToken: true,
  // PKCE (S256, the only method oidc-provider supports) for every
  // authorization request.
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    // Any authenticated client may introspect/revoke any token (test setup;
    // also silences oidc-provider's "you SHOULD change it" notices).
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: true, allowedPolicy: async () => true },
    // The development sign-in page at /interaction/:uid: any login name and
    // any password sign in as that name.
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    resourceIndicators: {
      enabled: true,
      // No `resource` => no audience => opaque token (a JWT needs an `aud`).
      defaultResource: async () => undefined,
      // The `resource` of the authorization request also applies to the code
      // exchange and to refreshes that name none, so the web clients get the
      // resource's JWT rather than an opaque userinfo token.
      useGrantedResource: async () => true,
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
  // Static, test-only keys for the sign-in session's signed cookies.
  cookies: { keys: ['portcullis-test-idp-cookie-key'] },
});

// Any loopback port for the web clients: their redirect URI is
// http://127.0.0.1:<port>/.portcullis/callback (or localhost), and any
// loopback path with a port is a post-logout redirect URI. This is
// oidc-provider's documented way to allow redirect URI patterns.
const { prototype: clientPrototype } = provider.Client;
const exactRedirectUriAllowed = clientPrototype.redirectUriAllowed;
const exactPostLogoutRedirectUriAllowed = clientPrototype.postLogoutRedirectUriAllowed;
clientPrototype.redirectUriAllowed = function redirectUriAllowed(value) {
  if (WEB_CLIENT_IDS.has(this.clientId) && loopbackUri(value, '/.portcullis/callback')) return true;
  return exactRedirectUriAllowed.call(this, value);
};
clientPrototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
  if (WEB_CLIENT_IDS.has(this.clientId) && loopbackUri(value)) return true;
  return exactPostLogoutRedirectUriAllowed.call(this, value);
};

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

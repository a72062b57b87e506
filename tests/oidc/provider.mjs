// A real OpenID provider for sandbox-forward's tests: node-oidc-provider (OpenID Certified),
// configured as our production IdP is expected to be. Test-only: in-memory storage, devInteractions
// (plain HTML login + consent forms, any login name accepted), loopback only.
//
// Usage: node provider.mjs [--port N] [--client-id ID] [--audience AUD] [--resource URI]
//                          [--access-token-ttl SECS] [--keys-dir DIR] [--other-audiences A,B]
// Each option also reads an environment variable: OIDC_PORT, OIDC_CLIENT_ID, OIDC_AUDIENCE,
// OIDC_RESOURCE, OIDC_ACCESS_TOKEN_TTL, OIDC_KEYS_DIR, OIDC_OTHER_AUDIENCES.
//
// Access tokens are RS256 JWTs (typ at+jwt) for the resource --resource (default `urn:AUDIENCE`),
// which is also the default resource, so a client never has to send `resource`; their `aud` is
// --audience. A token request (or authorization request) may name `resource=urn:OTHER` for each
// OTHER in --other-audiences (default `other-api`): a correctly signed token for the wrong
// audience, for negative tests.
//
// When ready it prints exactly one line on stdout, `issuer http://127.0.0.1:PORT`, and then nothing
// more on stdout (logs go to stderr).
//
// --keys-dir receives, before that line: jwks.json (public JWK set), signing-key.pem (the RSA
// public key, SPKI PEM) and signing-cert.pem (a self-signed X.509 certificate of that key, made
// with the `openssl` CLI when it is installed).
//
// Test-only admin routes (same listener, loopback only):
//   POST /test-admin/revoke?sub=LOGIN  revokes every grant of LOGIN with its refresh tokens and
//                                      authorization codes (JWT access tokens are stateless: they
//                                      stay valid until they expire) -> {"revoked_grants": N}
//   GET  /test-admin/grants?sub=LOGIN  -> {"grants": ["<grant id>", ...]} still alive

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    audience: { type: 'string' },
    resource: { type: 'string' },
    'access-token-ttl': { type: 'string' },
    'keys-dir': { type: 'string' },
    'other-audiences': { type: 'string' },
  },
});
const opt = (name, env, dflt) => args[name] ?? process.env[env] ?? dflt;

const PORT = Number(opt('port', 'OIDC_PORT', '0'));
const CLIENT_ID = opt('client-id', 'OIDC_CLIENT_ID', 'sandbox-forward');
const AUDIENCE = opt('audience', 'OIDC_AUDIENCE', 'sandbox-api');
// A resource indicator must be an absolute URI (RFC 8707); the audience is any string.
const RESOURCE = opt('resource', 'OIDC_RESOURCE', `urn:${AUDIENCE}`);
const ACCESS_TOKEN_TTL = Number(opt('access-token-ttl', 'OIDC_ACCESS_TOKEN_TTL', '300'));
const KEYS_DIR = opt('keys-dir', 'OIDC_KEYS_DIR', undefined);
const OTHER_AUDIENCES = opt('other-audiences', 'OIDC_OTHER_AUDIENCES', 'other-api').split(',').filter(Boolean);
const AUDIENCE_OF = new Map([[RESOURCE, AUDIENCE], ...OTHER_AUDIENCES.map((a) => [`urn:${a}`, a])]);
const SCOPE = 'openid offline_access profile email';

if (!Number.isInteger(ACCESS_TOKEN_TTL) || ACCESS_TOKEN_TTL <= 0) {
  throw new Error(`access token TTL must be a positive integer, got ${ACCESS_TOKEN_TTL}`);
}

// RS256 signing key, new for every run.
const kid = `rs256-${randomBytes(6).toString('hex')}`;
const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };

if (KEYS_DIR) {
  fs.mkdirSync(KEYS_DIR, { recursive: true });
  fs.writeFileSync(path.join(KEYS_DIR, 'jwks.json'), JSON.stringify({ keys: [publicJwk] }));
  fs.writeFileSync(path.join(KEYS_DIR, 'signing-key.pem'), await jose.exportSPKI(publicKey));
  const pkcs8 = path.join(KEYS_DIR, '.signing-private.pem');
  fs.writeFileSync(pkcs8, await jose.exportPKCS8(privateKey), { mode: 0o600 });
  try {
    execFileSync('openssl', [
      'req', '-x509', '-new', '-key', pkcs8, '-subj', '/CN=sandbox-forward test OP', '-days', '2',
      '-out', path.join(KEYS_DIR, 'signing-cert.pem'),
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (e) {
    console.error(`no X.509 certificate written (openssl: ${e.message})`);
  } finally {
    fs.rmSync(pkcs8, { force: true });
  }
}

// Grants per account, for the admin routes.
const grantsBySub = new Map();

let handler = (_req, res) => {
  res.writeHead(503).end('starting\n');
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const ISSUER = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'sandbox-forward',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    // Native client + http://127.0.0.1: any port is accepted at authorization (RFC 8252 §7.3).
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    scope: SCOPE,
  }],
  jwks: { keys: [privateJwk] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub, name: sub, email: `${sub}@example.test`, email_verified: true,
    }),
  }),
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  scopes: SCOPE.split(' '),
  pkce: { required: () => true }, // oidc-provider v9 implements S256 only
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client, source) => client.grantTypeAllowed('refresh_token')
    && source.scopes.has('offline_access'),
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      // Also at the token endpoint (where `openid` would otherwise mean an opaque userinfo token).
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const audience = AUDIENCE_OF.get(indicator);
        if (audience === undefined) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ACCESS_TOKEN_TTL,
          jwt: { sign: { alg: 'RS256', kid } },
        };
      },
    },
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
});
provider.proxy = false;

// oidc-provider follows OIDC Core §11 to the letter: it drops `offline_access` unless the request
// says `prompt=consent`. Keycloak, Auth0, Okta and friends honour `offline_access` without it, so
// this provider does too: an authorization request asking for `offline_access` without any
// `prompt` is treated as `prompt=consent` (the consent form is shown; the grant records
// offline_access; a refresh token is issued). A request with `prompt=login` (and no `consent`)
// still loses offline_access, as the spec says.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.prompt === undefined
      && typeof ctx.query.scope === 'string' && ctx.query.scope.split(' ').includes('offline_access')) {
    ctx.query = { ...ctx.query, prompt: 'consent' };
  }
  await next();
});

provider.on('grant.saved', (grant) => {
  if (!grantsBySub.has(grant.accountId)) grantsBySub.set(grant.accountId, new Set());
  grantsBySub.get(grant.accountId).add(grant.jti);
});
provider.on('grant.revoked', (_ctx, grantId) => {
  for (const set of grantsBySub.values()) set.delete(grantId);
});
for (const event of ['server_error', 'grant.error', 'authorization.error']) {
  provider.on(event, (_ctx, err) => console.error(`oidc-provider ${event}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`));
}

async function liveGrants(sub) {
  const ids = [...(grantsBySub.get(sub) ?? [])];
  const alive = await Promise.all(ids.map(async (id) => ((await provider.Grant.find(id)) ? id : null)));
  return alive.filter(Boolean);
}

async function admin(req, res, url) {
  const sub = url.searchParams.get('sub');
  const json = (code, body) => res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  if (!sub) return json(400, { error: 'sub is required' });
  if (url.pathname === '/test-admin/grants' && req.method === 'GET') {
    return json(200, { grants: await liveGrants(sub) });
  }
  if (url.pathname === '/test-admin/revoke' && req.method === 'POST') {
    const ids = await liveGrants(sub);
    for (const id of ids) {
      await Promise.all([
        provider.AccessToken.revokeByGrantId(id),
        provider.RefreshToken.revokeByGrantId(id),
        provider.AuthorizationCode.revokeByGrantId(id),
        provider.Grant.adapter.destroy(id),
      ]);
    }
    grantsBySub.delete(sub);
    return json(200, { revoked_grants: ids.length });
  }
  return json(404, { error: 'not found' });
}

const oidc = provider.callback();
handler = (req, res) => {
  const url = new URL(req.url, ISSUER);
  if (url.pathname.startsWith('/test-admin/')) {
    const remote = req.socket.remoteAddress;
    if (remote !== '127.0.0.1' && remote !== '::ffff:127.0.0.1' && remote !== '::1') {
      res.writeHead(403).end('forbidden\n');
      return;
    }
    admin(req, res, url).catch((e) => {
      console.error(e);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return;
  }
  oidc(req, res);
};

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

process.stdout.write(`issuer ${ISSUER}\n`);

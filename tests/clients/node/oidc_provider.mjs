// A real OpenID provider for the tests, on loopback: the certified `oidc-provider` package (tests/clients/node).
//
// It listens on a free port and prints {"issuer": "..."} as its first line. Before a sign-in, the test sets it up
// over HTTP: POST /test/setup {client_id, client_secret, redirect_uris, accounts: {sub: {email, email_verified,
// groups, preferred_username}}} builds a fresh provider with that client and those accounts (a new port is not
// needed per test). The login page is a plain form: the person types their subject and submits; login and consent
// are finished in one step, for the scopes the client asked for.
import http from 'node:http';

import Provider from 'oidc-provider';

let provider = null;
let accounts = {};

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}

function build(issuer, setup) {
  accounts = setup.accounts || {};
  const configured = new Provider(issuer, {
    clients: [{
      client_id: setup.client_id,
      client_secret: setup.client_secret,
      redirect_uris: setup.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    async findAccount(ctx, id) {
      if (!accounts[id]) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // The claims of the granted scopes go into the ID token, where Airlock reads them (docs/sign-in.md).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['airlock-tests-only-cookie-key'] },
  });
  configured.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  return configured;
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    send(res, 200, 'text/html; charset=utf-8', `<!doctype html><title>Test provider sign-in</title>
<form method="post" action="/interaction/${uid}/login">
<label>Subject <input name="login" autofocus></label>
<button type="submit" id="provider-sign-in">Sign in at the provider</button>
</form>`);
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const login = form.get('login') || '';
  if (!accounts[login]) {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'no such account' });
    return;
  }
  const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: login }, consent: { grantId } },
    { mergeWithLastSubmission: false });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/test/setup') {
      provider = build(issuer, JSON.parse(await readBody(req)));
      send(res, 204, 'text/plain', '');
      return;
    }
    if (req.method === 'POST' && url.pathname === '/test/accounts') {
      accounts = JSON.parse(await readBody(req));
      send(res, 204, 'text/plain', '');
      return;
    }
    if (!provider) {
      send(res, 503, 'text/plain', 'not set up: POST /test/setup first');
      return;
    }
    const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (match) {
      await interaction(req, res, match[1]);
      return;
    }
    provider.callback()(req, res);
  } catch (err) {
    process.stderr.write(`${err.stack}\n`);
    if (!res.headersSent) send(res, 500, 'text/plain', String(err));
  }
});

let issuer = '';
server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

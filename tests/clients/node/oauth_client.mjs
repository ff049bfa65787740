// The TypeScript SDK's own OAuth client (@modelcontextprotocol/client, installed with the Inspector) against Airlock:
// `node oauth_client.mjs MCP_URL REDIRECT_URI`. It registers itself (DCR) and prints the authorize link as
// {"event": "authorize", "url": ...}. Then it reads commands on stdin, one JSON object a line, and answers each with
// one JSON line on stdout:
//   {"command": "authorized", "query": "code=...&state=...&iss=..."}  what its redirect URI received, as a browser
//       would deliver it: finishes the flow and connects              -> {"event": "connected"}
//   {"command": "call", "tool": NAME, "arguments": {...}}              -> {"event": "result", "isError", "text"}
//       or, when the SDK could not get a working token                -> {"event": "call_failed", "message"}
//   {"command": "tokens"}                    -> {"event": "tokens", "access_token", "refresh_token", "invalidated"}
//   {"command": "exit"}                                                 -> {"event": "bye"}, and the process ends
// Whenever the SDK starts a new authorization it prints another {"event": "authorize", ...} line first. A failure
// outside a command is one {"event": "error"} line and exit status 1.
import readline from 'node:readline';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const [mcpUrl, redirectUri] = process.argv.slice(2);
const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const report = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));

const stored = { client: undefined, tokens: undefined, verifier: undefined, discovery: undefined, invalidated: [] };
const provider = {
  get redirectUrl() { return redirectUri; },
  get clientMetadata() {
    return {
      client_name: 'TypeScript connector',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation() { return stored.client; },
  saveClientInformation(info) { stored.client = info; },
  tokens() { return stored.tokens; },
  saveTokens(tokens) { stored.tokens = tokens; },
  redirectToAuthorization(url) { report('authorize', { url: url.toString() }); },
  saveCodeVerifier(verifier) { stored.verifier = verifier; },
  codeVerifier() { return stored.verifier; },
  saveDiscoveryState(state) { stored.discovery = state; },
  discoveryState() { return stored.discovery; },
  // The SDK drops what the server refused (a revoked refresh token answers invalid_grant) before asking again.
  invalidateCredentials(scope) {
    stored.invalidated.push(scope);
    if (scope === 'tokens' || scope === 'all') stored.tokens = undefined;
  },
};

const newClient = () => new Client({ name: 'airlock-ts-oauth', version: '1.0.0' });
const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });

async function main() {
  let client = newClient();
  let connection = transport();
  try {
    await client.connect(connection);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    const first = await lines.next();
    if (first.done) return;
    const asked = JSON.parse(first.value);
    if (asked.command !== 'authorized') throw new Error(`expected "authorized" first, got ${asked.command}`);
    await connection.finishAuth(new URLSearchParams(asked.query));
    client = newClient();
    connection = transport();
    await client.connect(connection);
  }
  report('connected');
  for (let next = await lines.next(); !next.done; next = await lines.next()) {
    const asked = JSON.parse(next.value);
    if (asked.command === 'call') {
      try {
        const result = await client.callTool({ name: asked.tool, arguments: asked.arguments ?? {} });
        const text = (result.content ?? []).filter((part) => part.type === 'text').map((part) => part.text).join('');
        report('result', { isError: Boolean(result.isError), text });
      } catch (error) {
        report('call_failed', { message: String(error?.message ?? error) });
      }
    } else if (asked.command === 'tokens') {
      report('tokens', {
        access_token: stored.tokens?.access_token ?? null,
        refresh_token: stored.tokens?.refresh_token ?? null,
        invalidated: stored.invalidated,
      });
    } else if (asked.command === 'exit') {
      break;
    } else {
      throw new Error(`unknown command ${JSON.stringify(asked.command)}`);
    }
  }
  report('bye');
  await client.close().catch(() => {});
}

main().then(
  () => process.exit(0),
  (error) => { report('error', { message: String(error?.message ?? error) }); process.exit(1); },
);

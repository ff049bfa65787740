// The TypeScript SDK's own OAuth client (@modelcontextprotocol/client, installed with the Inspector) against Airlock:
// `node oauth_client.mjs MCP_URL REDIRECT_URI`. It registers itself (DCR), prints the authorize link as
// {"event": "authorize", "url": ...}, waits for one stdin line (the query its redirect URI received, as a browser
// would deliver it), finishes the flow, calls a tool, and prints {"event": "result", ...}. Errors are one JSON line.
import readline from 'node:readline';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const [mcpUrl, redirectUri] = process.argv.slice(2);
const input = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => input.once('line', resolve));
const report = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));

const stored = { client: undefined, tokens: undefined, verifier: undefined };
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
};

const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });

async function main() {
  let client = new Client({ name: 'airlock-ts-oauth', version: '1.0.0' });
  let connection = transport();
  try {
    await client.connect(connection);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    await connection.finishAuth(new URLSearchParams(await nextLine()));
    client = new Client({ name: 'airlock-ts-oauth', version: '1.0.0' });
    connection = transport();
    await client.connect(connection);
  }
  const result = await client.callTool({ name: 'get_model_capabilities', arguments: {} });
  report('result', { isError: Boolean(result.isError), token: stored.tokens.access_token.slice(0, 5) });
  await client.close();
}

main().then(
  () => process.exit(0),
  (error) => { report('error', { message: String(error?.message ?? error) }); process.exit(1); },
);

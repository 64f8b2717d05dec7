// A real OpenID Provider (panva/oidc-provider, OpenID-certified) for Gatehouse's login tests and
// the demo. Everything is configured from the environment so a test can start one per scenario:
//
//   OIDC_PORT                  port on 127.0.0.1 (required)
//   OIDC_ISSUER                issuer URL (default http://127.0.0.1:$OIDC_PORT)
//   OIDC_CLIENT_ID             the relying party's client id (default gatehouse)
//   OIDC_CLIENT_SECRET         its secret (required)
//   OIDC_REDIRECT_URIS         comma-separated registered redirect URIs (required)
//   OIDC_POST_LOGOUT_REDIRECT_URIS  comma-separated, optional
//   OIDC_BACKCHANNEL_LOGOUT_URI     optional; enables OIDC Back-Channel Logout for the client
//   OIDC_ACCESS_TOKEN_TTL      access token lifetime in seconds (default 3600)
//   OIDC_SERVICE_CLIENT_ID     optional: a second client, for the client-credentials grant
//   OIDC_SERVICE_CLIENT_SECRET its secret
//   OIDC_SERVICE_RESOURCE      the API its tokens are for (RFC 8707 `resource`): tokens asked
//                              for it are JWTs with that audience (default https://partner-api.test)
//   OIDC_EXIT_WITH_STDIN       1: exit when stdin closes (tests: no provider outlives its test)
//
// Logins use the library's development interactions: any login name with any password signs in
// as that name. Consent is granted automatically so a scripted client needs only the login form.
// Accounts: sub = the login, email = <login>@example.com, groups = ["users"] plus "admins" for
// the login "admin".

import Provider, { errors } from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) {
      console.error(`oidc-provider: ${name} is required`);
      process.exit(2);
    }
    return fallback;
  }
  return value;
};
const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

const port = Number(env('OIDC_PORT'));
const issuer = env('OIDC_ISSUER', `http://127.0.0.1:${port}`);
const backchannelUri = env('OIDC_BACKCHANNEL_LOGOUT_URI', '');

const client = {
  client_id: env('OIDC_CLIENT_ID', 'gatehouse'),
  client_secret: env('OIDC_CLIENT_SECRET'),
  redirect_uris: list(env('OIDC_REDIRECT_URIS')),
  post_logout_redirect_uris: list(env('OIDC_POST_LOGOUT_REDIRECT_URIS', '')),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};
if (backchannelUri) {
  client.backchannel_logout_uri = backchannelUri;
  client.backchannel_logout_session_required = true;
}

// A service (machine-to-machine) client: client credentials only, for gateways that inject an
// upstream token. Its tokens for the resource are JWTs, so a backend can check who asked.
const serviceClientId = env('OIDC_SERVICE_CLIENT_ID', '');
const serviceResource = env('OIDC_SERVICE_RESOURCE', 'https://partner-api.test');
const clients = [client];
if (serviceClientId) {
  clients.push({
    client_id: serviceClientId,
    client_secret: env('OIDC_SERVICE_CLIENT_SECRET'),
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'orders.read orders.write',
  });
}

const account = (id) => ({
  accountId: id,
  async claims() {
    return {
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      name: id.charAt(0).toUpperCase() + id.slice(1),
      groups: id === 'admin' ? ['admins', 'users'] : ['users'],
    };
  },
});

const provider = new Provider(issuer, {
  clients,
  // Ephemeral signing keys are generated at start when none are given (a warning says so).
  cookies: { keys: ['gatehouse-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'orders.read', 'orders.write'],
  // Put the granted claims into the ID token, as most hosted providers do.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: {
    AccessToken: Number(env('OIDC_ACCESS_TOKEN_TTL', '3600')),
    IdToken: 3600,
    Session: 86400,
    Grant: 86400,
    RefreshToken: 86400,
    Interaction: 600,
    AuthorizationCode: 60,
  },
  findAccount: async (_ctx, id) => account(id),
  // The library refuses outgoing calls to special-use addresses (SSRF protection); this test
  // provider's one outgoing call is the back-channel logout to ext-authz on loopback.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  // Auto-consent: reuse or create a grant holding everything the client asked for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const grant = grantId
      ? await ctx.oidc.provider.Grant.find(grantId)
      : new ctx.oidc.provider.Grant({ accountId: ctx.oidc.session.accountId, clientId: ctx.oidc.client.clientId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    grant.addOIDCClaims(['sub', 'email', 'email_verified', 'name', 'groups']);
    await grant.save();
    return grant;
  },
  // A refresh token for every client allowed the refresh_token grant (not only offline_access).
  issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    // Only the service resource; a login (no `resource`) gets the usual opaque access token.
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceIndicator !== serviceResource) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'orders.read orders.write',
          audience: serviceResource,
          accessTokenTTL: Number(env('OIDC_ACCESS_TOKEN_TTL', '3600')),
          accessTokenFormat: 'jwt',
        };
      },
    },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The confirmation form submits itself (a scripted client posts it as it is).
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><head><title>Sign out</title></head><body>
${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}
<button type="submit" form="op.logoutForm" id="confirm-logout">Sign out</button>
<script>document.forms['op.logoutForm'].submit()</script></body></html>`;
      },
    },
  },
});

provider.on('backchannel.error', (_ctx, err, client) => {
  console.error(`oidc-provider: back-channel logout to ${client.clientId} failed: ${err.message}`);
});

// OIDC_EXIT_WITH_STDIN=1: exit when stdin closes, i.e. when the test process that started us
// ends, however it ends (a test binary's statics are never dropped, a killed run cleans nothing).
if (process.env.OIDC_EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

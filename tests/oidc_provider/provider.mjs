// A real OpenID provider for vpnctl's single sign-on tests: panva's oidc-provider
// (OpenID Certified), on loopback, with its own login page (devInteractions).
//
// Started by tests/oidc_helpers.py with, in the environment:
//   OIDC_PORT           the port to listen on (127.0.0.1 only); the issuer is http://127.0.0.1:PORT
//   OIDC_CLIENT_ID      the one client, vpnctl ...
//   OIDC_CLIENT_SECRET  ... its secret ...
//   OIDC_REDIRECT_URIS  ... and its redirect URIs, comma-separated
//   OIDC_ACCOUNTS_FILE  a JSON file {"<login>": {"email": ..., "name": ..., "groups": [...]}},
//                       read at every sign-in, so that a test can change someone's groups
//                       between two logins.
// The login page accepts any password for a login listed in the file (that is what
// devInteractions does); the login becomes the account's `sub`.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;

function readAccounts() {
  return JSON.parse(readFileSync(process.env.OIDC_ACCOUNTS_FILE, 'utf8'));
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: process.env.OIDC_REDIRECT_URIS.split(','),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  // vpnctl is the provider's own (first-party) client: no consent screen after the login.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const account = readAccounts()[id];
    if (!account) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id, ...account };
        if (claims.email) {
          claims.email_verified = true;
        }
        return claims;
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening: ${issuer}`);
});

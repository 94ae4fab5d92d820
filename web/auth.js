/* Sign-in for the deployed console: Cognito's managed login (hosted UI), authorization code flow with PKCE
 * (a public app client: no secret in the browser). Tokens live in sessionStorage (gone when the tab closes).
 * Offline (config.mode === "offline") there is no sign-in: the local server answers every request. */
"use strict";

const Auth = (() => {
  const KEY = "sentinel.tokens";
  const VERIFIER = "sentinel.pkce";
  let config = null;

  const b64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function challenge(verifier) {
    return b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  }

  function redirectUri() {
    return config.auth.redirectUri || window.location.origin + "/";
  }

  async function signIn() {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    sessionStorage.setItem(VERIFIER, verifier);
    const q = new URLSearchParams({
      response_type: "code",
      client_id: config.auth.clientId,
      redirect_uri: redirectUri(),
      scope: "openid email",
      code_challenge_method: "S256",
      code_challenge: await challenge(verifier),
    });
    window.location.assign(`https://${config.auth.domain}/oauth2/authorize?${q}`);
  }

  async function exchange(code) {
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.auth.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: sessionStorage.getItem(VERIFIER) || "",
    });
    const resp = await fetch(`https://${config.auth.domain}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body,
    });
    if (!resp.ok) throw new Error(`sign-in failed (${resp.status}): ${await resp.text()}`);
    const tokens = await resp.json();
    tokens.expires_at = Date.now() + 1000 * (tokens.expires_in || 3600);
    sessionStorage.setItem(KEY, JSON.stringify(tokens));
    sessionStorage.removeItem(VERIFIER);
  }

  function tokens() {
    const t = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return t && t.expires_at > Date.now() + 30000 ? t : null;
  }

  return {
    /** Resolve when a request can be made; redirect to sign-in otherwise. */
    async init(cfg) {
      config = cfg;
      if (cfg.mode === "offline") return;
      const code = new URLSearchParams(window.location.search).get("code");
      if (code) {
        await exchange(code);
        window.history.replaceState({}, "", window.location.pathname + window.location.hash);
      }
      if (!tokens()) await signIn();
      const out = document.getElementById("signout");
      out.hidden = false;
      out.addEventListener("click", () => {
        sessionStorage.removeItem(KEY);
        const q = new URLSearchParams({ client_id: cfg.auth.clientId, logout_uri: redirectUri() });
        window.location.assign(`https://${cfg.auth.domain}/logout?${q}`);
      });
    },
    headers() {
      const t = config && config.mode !== "offline" ? tokens() : null;
      return t ? { Authorization: `Bearer ${t.id_token}` } : {};
    },
    expired() {
      return config && config.mode !== "offline" && !tokens();
    },
    signIn,
  };
})();

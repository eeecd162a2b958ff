// Profile fields as realm-web exposes them (user.profile, user.identities, profile type)
// for a custom-JWT user whose claims the server maps to profile data through
// metadata_fields (non-demo settings), plus email/password and anonymous users.
// Env: CUSTOM_TOKEN_SECRET, CUSTOM_TOKEN_AUDIENCE, SERVER_API_KEY (set in the test's
// config file; never printed).
import {
  assert, Realm, expectServiceError, mailFor, makeApp, nowSeconds, randomPassword, rejects,
  requireEnv, scenario, signJwt, step, uniqueEmail,
} from "./_harness.mjs";

await scenario(async () => {
  const secret = requireEnv("CUSTOM_TOKEN_SECRET");
  const audience = requireEnv("CUSTOM_TOKEN_AUDIENCE");
  const serverKey = requireEnv("SERVER_API_KEY");
  const { app } = makeApp();
  const claims = {
    sub: `profile-${Date.now().toString(36)}`,
    aud: audience,
    iat: nowSeconds(),
    exp: nowSeconds() + 300,
    name: "Ada Lovelace",
    email: "ada@example.com",
    given_name: "Ada",
    family_name: "Lovelace",
    picture: "https://example.com/ada.png",
    details: { gender: "female", birthday: "1815-12-10", min_age: "18", max_age: "99" },
    department: "engines",
  };

  await step("profile.jwt_metadata_fields", async () => {
    const user = await app.logIn(Realm.Credentials.jwt(signJwt(claims, secret)));
    // realm-web renames the standard keys to camelCase and passes the rest through.
    assert.deepEqual(user.profile, {
      name: "Ada Lovelace",
      email: "ada@example.com",
      firstName: "Ada",
      lastName: "Lovelace",
      pictureUrl: "https://example.com/ada.png",
      gender: "female",
      birthday: "1815-12-10",
      minAge: "18",
      maxAge: "99",
      department: "engines",
    });
    assert.equal(user._profile.type, "normal");
    assert.deepEqual(user.identities, [{ id: claims.sub, providerType: "custom-token" }]);
    return { profile: user.profile, identities: user.identities };
  });

  await step("profile.jwt_required_field_missing_fails", async () => {
    const { department: _omitted, ...rest } = claims;
    return rejects(() => app.logIn(Realm.Credentials.jwt(signJwt(rest, secret))), (err) =>
      expectServiceError(err, { status: "4xx" }),
    );
  });

  await step("profile.jwt_wrong_audience_fails", async () =>
    rejects(() => app.logIn(Realm.Credentials.jwt(signJwt({ ...claims, aud: "someone-else" }, secret))), (err) =>
      expectServiceError(err, { status: "4xx" }),
    ),
  );

  await step("profile.email_password", async () => {
    const email = uniqueEmail("prof");
    const password = randomPassword();
    await app.emailPasswordAuth.registerUser({ email, password });
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    const user = await app.logIn(Realm.Credentials.emailPassword(email, password));
    assert.equal(user.profile.email, email);
    assert.equal(user.identities[0].providerType, "local-userpass");
    assert.equal(user._profile.type, "normal");
    return { profile: user.profile };
  });

  await step("profile.anonymous", async () => {
    const user = await app.logIn(Realm.Credentials.anonymous());
    assert.equal(user.profile.email, undefined);
    assert.deepEqual(user.identities.map((i) => i.providerType), ["anon-user"]);
    return { profile: user.profile };
  });

  await step("profile.refresh_profile", async () => {
    // refreshProfile() re-reads GET /auth/profile for the current user.
    const user = app.currentUser;
    await user.refreshProfile();
    assert.deepEqual(user.identities.map((i) => i.providerType), ["anon-user"]);
    return null;
  });

  await step("profile.server_api_key", async () => {
    // Server API keys log in through the same api-key provider; only the type differs.
    const user = await app.logIn(Realm.Credentials.apiKey(serverKey));
    assert.equal(user._profile.type, "server");
    assert.equal(user.identities[0].providerType, "api-key");
    const again = await makeApp().app.logIn(Realm.Credentials.apiKey(serverKey));
    assert.equal(again.id, user.id, "a server key always logs in the same user");
    return { type: user._profile.type, profile: user.profile };
  });
});

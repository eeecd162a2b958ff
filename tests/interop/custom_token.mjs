// Custom JWT login (custom-token provider, HS256 with the demo secret): the same `sub`
// maps to the same user; bad signatures, expired tokens and `alg: none` are refused.
// Env: CUSTOM_TOKEN_SECRET (the server's HS256 key; never printed).
import {
  assert, Realm, expectServiceError, makeApp, nowSeconds, rejects, requireEnv, scenario, signJwt,
  step,
} from "./_harness.mjs";

await scenario(async () => {
  const secret = requireEnv("CUSTOM_TOKEN_SECRET");
  const { app } = makeApp();
  const subject = `ext-${Date.now().toString(36)}`;
  const claims = () => ({ sub: subject, iat: nowSeconds(), exp: nowSeconds() + 300, name: "Jay Tee" });
  let user;

  await step("jwt.login", async () => {
    user = await app.logIn(Realm.Credentials.jwt(signJwt(claims(), secret)));
    assert.match(user.id, /^[0-9a-f]{24}$/);
    assert.equal(user.providerType, "custom-token");
    assert.equal(user.identities.length, 1);
    assert.equal(user.identities[0].providerType, "custom-token");
    return { userId: user.id, identities: user.identities, profile: user.profile };
  });

  await step("jwt.function_call", async () => {
    assert.equal(await user.functions.sum(1, 2, 3), 6);
    return null;
  });

  await step("jwt.same_subject_same_user", async () => {
    await user.logOut();
    const again = await app.logIn(Realm.Credentials.jwt(signJwt(claims(), secret)));
    assert.equal(again.id, user.id, "the same sub must map to the same user");
    return { userId: again.id };
  });

  await step("jwt.other_subject_other_user", async () => {
    const other = await app.logIn(Realm.Credentials.jwt(signJwt({ ...claims(), sub: `${subject}-2` }, secret)));
    assert.notEqual(other.id, user.id);
    return { userId: other.id };
  });

  await step("jwt.wrong_secret_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.jwt(signJwt(claims(), `${secret}-not`))),
      (err) => expectServiceError(err, { status: "4xx" }),
    ),
  );

  await step("jwt.expired_fails", async () =>
    rejects(
      () =>
        app.logIn(Realm.Credentials.jwt(signJwt({ ...claims(), iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }, secret))),
      (err) => expectServiceError(err, { status: "4xx" }),
    ),
  );

  await step("jwt.alg_none_fails", async () => {
    const [head, body] = signJwt(claims(), secret, { alg: "none" }).split(".");
    return rejects(
      () => app.logIn(Realm.Credentials.jwt(`${head}.${body}.`)),
      (err) => expectServiceError(err, { status: "4xx" }),
    );
  });

  await step("jwt.missing_sub_fails", async () => {
    const { sub: _omitted, ...noSub } = claims();
    return rejects(() => app.logIn(Realm.Credentials.jwt(signJwt(noSub, secret))), (err) => expectServiceError(err, { status: "4xx" }));
  });
});

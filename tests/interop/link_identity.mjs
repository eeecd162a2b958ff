// Link an anonymous user to an email/password identity: the user keeps its id, the
// profile lists both identities, and the new credentials log in as that same user.
import {
  assert, Realm, expectServiceError, mailFor, makeApp, randomPassword, rejects, scenario, step,
  uniqueEmail,
} from "./_harness.mjs";

await scenario(async () => {
  const { app, http } = makeApp();
  const email = uniqueEmail("link");
  const password = randomPassword();
  let user;

  await step("link.anonymous_login", async () => {
    user = await app.logIn(Realm.Credentials.anonymous());
    assert.deepEqual(user.identities.map((i) => i.providerType), ["anon-user"]);
    return { userId: user.id };
  });

  await step("link.register_and_confirm", async () => {
    await app.emailPasswordAuth.registerUser({ email, password });
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    return { email };
  });

  await step("link.link_email_password", async () => {
    await user.linkCredentials(Realm.Credentials.emailPassword(email, password));
    const linkRequest = http.log.findLast((e) => e.path.endsWith("/local-userpass/login"));
    assert.equal(linkRequest.query, "?link=true");
    assert.ok(linkRequest.hasAuth, "link is sent with the user's access token");
    assert.equal(user.decodeAccessToken().subject, user.id, "link returns an access token for the same user");
    return { userId: user.id, identities: user.identities };
  });

  await step("link.identities_after_link", async () => {
    await user.refreshProfile();
    const types = user.identities.map((i) => i.providerType);
    assert.deepEqual([...types].sort(), ["anon-user", "local-userpass"]);
    assert.equal(user.profile.email, email);
    return { identities: user.identities, profile: user.profile };
  });

  await step("link.function_call_after_link", async () => {
    const me = await user.functions.whoami();
    return { whoami: me };
  });

  await step("link.login_with_linked_credentials", async () => {
    const { app: other } = makeApp();
    const again = await other.logIn(Realm.Credentials.emailPassword(email, password));
    assert.equal(again.id, user.id, "the linked identity logs in as the original user");
    assert.deepEqual(again.identities.map((i) => i.providerType).sort(), ["anon-user", "local-userpass"]);
    await again.logOut();
    return { userId: again.id };
  });

  await step("link.identity_of_another_user_fails", async () => {
    // The email identity now belongs to `user`; linking it to a different user must fail.
    const { app: other } = makeApp();
    const stranger = await other.logIn(Realm.Credentials.anonymous());
    const detail = await rejects(
      () => stranger.linkCredentials(Realm.Credentials.emailPassword(email, password)),
      (err) => expectServiceError(err, { status: "4xx" }),
    );
    assert.deepEqual(stranger.identities.map((i) => i.providerType), ["anon-user"]);
    return detail;
  });
});

// User API keys through user.apiKeys: create/list/fetch/disable/enable/delete, and
// logging in with the key (Credentials.apiKey); a disabled or deleted key is refused.
import {
  assert, Realm, expectServiceError, mailFor, makeApp, randomPassword, recordSecret, rejects, scenario,
  step, uniqueEmail,
} from "./_harness.mjs";

await scenario(async () => {
  const { app, http } = makeApp();
  const email = uniqueEmail("keys");
  const password = randomPassword();
  let owner;
  let created;
  let other;

  await step("keys.owner_login", async () => {
    await app.emailPasswordAuth.registerUser({ email, password });
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    owner = await app.logIn(Realm.Credentials.emailPassword(email, password));
    recordSecret("password", password);
    recordSecret("refresh_token", owner.refreshToken);
    return { userId: owner.id };
  });

  await step("keys.create", async () => {
    created = await owner.apiKeys.create("ci-runner");
    // _id must be a plain 24-hex string (core rejects an {"$oid"} wrapper).
    assert.equal(typeof created._id, "string", "_id must be a plain string, not an ObjectId");
    assert.match(created._id, /^[0-9a-f]{24}$/);
    assert.equal(created.name, "ci-runner");
    assert.equal(created.disabled, false);
    assert.equal(typeof created.key, "string");
    assert.ok(created.key.length >= 32, "key should be long and random");
    recordSecret("api_key", created.key);
    // API key routes go with the refresh token to the non-app-scoped /auth/api_keys.
    const entry = http.log.findLast((e) => e.method === "POST" && e.path === "/api/client/v2.0/auth/api_keys");
    assert.ok(entry && entry.hasAuth);
    return { id: created._id, name: created.name, disabled: created.disabled, status: entry.status };
  });

  await step("keys.create_second", async () => {
    other = await owner.apiKeys.create("backup");
    assert.notEqual(other._id, created._id);
    assert.ok(other.key !== created.key, "each key is a distinct secret");
    recordSecret("api_key", other.key);
    return { id: other._id };
  });

  await step("keys.list", async () => {
    const keys = await owner.apiKeys.fetchAll();
    assert.ok(Array.isArray(keys));
    const byId = Object.fromEntries(keys.map((k) => [k._id, k]));
    assert.deepEqual(Object.keys(byId).sort(), [created._id, other._id].sort());
    for (const k of keys) {
      assert.equal(k.key, undefined, "list must not return the secret key");
      assert.equal(k.disabled, false);
    }
    assert.equal(byId[created._id].name, "ci-runner");
    return keys;
  });

  await step("keys.fetch", async () => {
    const key = await owner.apiKeys.fetch(created._id);
    assert.deepEqual(key, { _id: created._id, name: "ci-runner", disabled: false });
    return key;
  });

  // Key logins happen on a second "device" so the owner's own session stays untouched.
  const { app: keyApp } = makeApp();

  await step("keys.login_with_key", async () => {
    const keyUser = await keyApp.logIn(Realm.Credentials.apiKey(created.key));
    assert.equal(keyUser.id, owner.id, "a user API key logs in as its owner");
    assert.equal(keyUser._profile.type, "normal");
    assert.equal(await keyUser.functions.sum(20, 22), 42);
    return { userId: keyUser.id, identities: keyUser.identities };
  });

  await step("keys.disable", async () => {
    await owner.apiKeys.disable(created._id);
    const key = await owner.apiKeys.fetch(created._id);
    assert.equal(key.disabled, true);
    return key;
  });

  await step("keys.login_with_disabled_key_fails", async () =>
    rejects(() => keyApp.logIn(Realm.Credentials.apiKey(created.key)), (err) => expectServiceError(err)),
  );

  await step("keys.other_key_still_works", async () => {
    const keyUser = await keyApp.logIn(Realm.Credentials.apiKey(other.key));
    assert.equal(keyUser.id, owner.id);
    return { userId: keyUser.id };
  });

  await step("keys.enable", async () => {
    await owner.apiKeys.enable(created._id);
    const key = await owner.apiKeys.fetch(created._id);
    assert.equal(key.disabled, false);
    const keyUser = await keyApp.logIn(Realm.Credentials.apiKey(created.key));
    assert.equal(keyUser.id, owner.id);
    return key;
  });

  await step("keys.delete", async () => {
    await owner.apiKeys.delete(created._id);
    const keys = await owner.apiKeys.fetchAll();
    assert.deepEqual(keys.map((k) => k._id), [other._id]);
    return keys;
  });

  await step("keys.fetch_deleted_fails", async () =>
    rejects(
      () => owner.apiKeys.fetch(created._id),
      (err) => expectServiceError(err, { errorCode: "APIKeyNotFound" }),
    ),
  );

  await step("keys.login_with_deleted_key_fails", async () =>
    rejects(() => keyApp.logIn(Realm.Credentials.apiKey(created.key)), (err) => expectServiceError(err)),
  );

  await step("keys.garbage_key_fails", async () =>
    rejects(() => keyApp.logIn(Realm.Credentials.apiKey("not-a-real-key")), (err) => expectServiceError(err)),
  );

  await step("keys.other_users_key_not_found", async () => {
    // A key id belonging to someone else is "not found" for this user.
    const stranger = await keyApp.logIn(Realm.Credentials.anonymous());
    const detail = await rejects(
      () => stranger.apiKeys.fetch(other._id),
      (err) => expectServiceError(err, { errorCode: "APIKeyNotFound" }),
    );
    await stranger.logOut();
    return detail;
  });
});

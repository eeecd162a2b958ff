// A forced 401: the admin hook revokes the user's access tokens, the next function call
// gets 401 InvalidSession, realm-web refreshes once (POST /auth/session) and retries.
// Then: a refresh that fails with 5xx keeps the user logged in; revoked sessions log
// the user out.
import {
  assert, Realm, admin, countRequests, expectServiceError, makeApp, rejects, scenario, statCount, step,
} from "./_harness.mjs";

const functionCalls = (log) => log.filter((e) => e.method === "POST" && e.path.endsWith("/functions/call"));

await scenario(async () => {
  const { app, http } = makeApp();
  let user;

  await step("refresh.login", async () => {
    user = await app.logIn(Realm.Credentials.anonymous());
    assert.equal(await user.functions.sum(1, 1), 2);
    return { userId: user.id };
  });

  await step("refresh.revoke_then_call", async () => {
    const before = await admin.stats();
    const refreshesBefore = countRequests(http.log, "POST", "/auth/session");
    const callsBefore = functionCalls(http.log).length;
    const oldAccess = user.accessToken;
    await admin.revokeAccessTokens(user.id);

    assert.equal(await user.functions.sum(40, 2), 42, "the call succeeds after a transparent refresh");

    const after = await admin.stats();
    const calls = functionCalls(http.log).slice(callsBefore);
    assert.deepEqual(calls.map((e) => e.status), [401, 200], "one 401 then one successful retry");
    assert.equal(countRequests(http.log, "POST", "/auth/session") - refreshesBefore, 1, "one refresh request");
    assert.equal(statCount(after, "refresh") - statCount(before, "refresh"), 1, "server counted one refresh");
    assert.ok(user.accessToken !== oldAccess, "a new access token was stored");
    assert.equal(user.state, "active");
    return {
      callStatuses: calls.map((e) => e.status),
      refreshStatBefore: statCount(before, "refresh"),
      refreshStatAfter: statCount(after, "refresh"),
    };
  });

  await step("refresh.refresh_token_not_rotated", async () => {
    // POST /auth/session returns only an access token; the refresh token stays the same.
    const refreshBefore = user.refreshToken;
    await user.refreshAccessToken();
    assert.ok(user.refreshToken === refreshBefore, "the refresh token is unchanged");
    return null;
  });

  await step("refresh.concurrent_calls_after_revoke", async () => {
    // realm-web has no single-flight refresh: each of N concurrent 401s refreshes on its
    // own. Every one of those refreshes and retries must succeed (no token rotation).
    const refreshesBefore = countRequests(http.log, "POST", "/auth/session");
    await admin.revokeAccessTokens(user.id);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => user.functions.sum(i, 1)));
    assert.deepEqual(results, [1, 2, 3, 4, 5, 6, 7, 8]);
    const refreshes = countRequests(http.log, "POST", "/auth/session") - refreshesBefore;
    assert.ok(refreshes >= 1 && refreshes <= 8, `refreshes: ${refreshes}`);
    return { refreshes };
  });

  await step("refresh.server_error_keeps_user", async () => {
    await admin.revokeAccessTokens(user.id);
    await admin.fault("refresh", 500, { error: "injected", error_code: "InternalServerError" }, 1);
    const detail = await rejects(() => user.functions.sum(1, 2), (err) => expectServiceError(err, { status: 500 }));
    assert.equal(user.state, "active", "a 5xx refresh must not log the user out");
    // The fault is spent: the next call refreshes for real and succeeds.
    assert.equal(await user.functions.sum(1, 2), 3);
    return detail;
  });

  await step("refresh.revoked_session_logs_out", async () => {
    await admin.revokeSessions(user.id);
    await admin.revokeAccessTokens(user.id);
    const detail = await rejects(
      () => user.functions.sum(1, 2),
      (err) => expectServiceError(err, { status: 401, errorCode: "InvalidSession" }),
    );
    // realm-web clears both tokens when the refresh token is refused.
    assert.ok(user.refreshToken === null, "the refresh token was cleared");
    assert.equal(user.state, "logged-out");
    return detail;
  });
});

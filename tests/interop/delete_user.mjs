// Log out, log back in, delete the user (app.deleteUser): the same credentials no longer
// log in and the deleted user's tokens are dead.
import {
  assert, Realm, expectServiceError, mailFor, makeApp, randomPassword, rejects, scenario, step,
  uniqueEmail,
} from "./_harness.mjs";

await scenario(async () => {
  const { app, http } = makeApp();
  const email = uniqueEmail("del");
  const password = randomPassword();
  let user;
  let firstId;

  await step("delete.register_login", async () => {
    await app.emailPasswordAuth.registerUser({ email, password });
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    user = await app.logIn(Realm.Credentials.emailPassword(email, password));
    firstId = user.id;
    return { userId: user.id };
  });

  await step("delete.logout", async () => {
    const refresh = user.refreshToken;
    await user.logOut();
    assert.equal(user.state, "logged-out");
    assert.equal(app.currentUser, null);
    // The server revoked the session: the old refresh token no longer refreshes.
    const response = await fetch(`${await app.locationUrl}/api/client/v2.0/auth/session`, {
      method: "POST",
      headers: { Authorization: `Bearer ${refresh}`, Accept: "application/json" },
    });
    assert.equal(response.status, 401);
    assert.equal((await response.json()).error_code, "InvalidSession");
    return { refreshAfterLogout: response.status };
  });

  await step("delete.logout_twice_is_harmless", async () => {
    // DELETE /auth/session with an unknown token: 401 "failed to find refresh token".
    const response = await fetch(`${await app.locationUrl}/api/client/v2.0/auth/session`, {
      method: "DELETE",
      headers: { Authorization: "Bearer unknown-refresh-token", Accept: "application/json" },
    });
    const body = await response.json();
    assert.equal(response.status, 401);
    assert.equal(body.error_code, "InvalidSession");
    assert.match(body.error, /failed to find refresh token/);
    return { status: response.status, error: body.error };
  });

  await step("delete.login_again", async () => {
    user = await app.logIn(Realm.Credentials.emailPassword(email, password));
    assert.equal(user.id, firstId);
    assert.equal(app.currentUser, user);
    return { userId: user.id };
  });

  await step("delete.delete_user", async () => {
    const access = user.accessToken;
    await app.deleteUser(user);
    const del = http.log.findLast((e) => e.method === "DELETE" && e.path.endsWith("/auth/delete"));
    assert.ok(del.status >= 200 && del.status < 300, `DELETE /auth/delete status ${del.status}`);
    assert.equal(user.state, "removed");
    assert.equal(app.currentUser, null);
    assert.deepEqual(Object.keys(app.allUsers), []);
    // The deleted user's access token is dead too.
    const response = await fetch(`${await app.locationUrl}/api/client/v2.0/auth/profile`, {
      headers: { Authorization: `Bearer ${access}`, Accept: "application/json" },
    });
    assert.equal(response.status, 401);
    return { deleteStatus: del.status, profileAfterDelete: response.status };
  });

  await step("delete.login_after_delete_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.emailPassword(email, password)),
      (err) => expectServiceError(err, { status: 401, errorCode: "InvalidPassword" }),
    ),
  );

  await step("delete.register_again_is_new_user", async () => {
    // The email is free again; a new registration makes a new user.
    await app.emailPasswordAuth.registerUser({ email, password });
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    const fresh = await app.logIn(Realm.Credentials.emailPassword(email, password));
    assert.notEqual(fresh.id, firstId);
    return { userId: fresh.id };
  });
});

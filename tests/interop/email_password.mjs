// Email/password: register, confirm from the outbox, log in, reset the password from the
// outbox, log in with the new password while the old one is refused.
import {
  assert, Realm, admin, expectServiceError, mailFor, makeApp, randomPassword, recordSecret, rejects,
  scenario, step, uniqueEmail,
} from "./_harness.mjs";

await scenario(async () => {
  const { app, http } = makeApp();
  const email = uniqueEmail("ep");
  const password = randomPassword();
  const newPassword = randomPassword();
  let user;
  recordSecret("password", password);
  recordSecret("password", newPassword);

  await step("email.register", async () => {
    await app.emailPasswordAuth.registerUser({ email, password });
    const entry = http.log.find((e) => e.path.endsWith("/local-userpass/register"));
    assert.ok(entry.status >= 200 && entry.status < 300);
    return { email, status: entry.status };
  });

  await step("email.register_duplicate_fails", async () =>
    rejects(
      () => app.emailPasswordAuth.registerUser({ email, password }),
      (err) => expectServiceError(err, { errorCode: "AccountNameInUse" }),
    ),
  );

  await step("email.login_before_confirm_fails", async () =>
    rejects(() => app.logIn(Realm.Credentials.emailPassword(email, password)), (err) => expectServiceError(err)),
  );

  await step("email.confirm_bad_token_fails", async () =>
    rejects(
      () => app.emailPasswordAuth.confirmUser({ token: "0".repeat(64), tokenId: "0".repeat(24) }),
      (err) => expectServiceError(err, { errorCode: "UserpassTokenInvalid" }),
    ),
  );

  await step("email.resend_confirmation", async () => {
    const before = (await admin.outbox()).filter((m) => m.email === email).length;
    await app.emailPasswordAuth.resendConfirmationEmail({ email });
    const mails = (await admin.outbox()).filter((m) => m.email === email);
    assert.equal(mails.length, before + 1, "resend queues one more mail");
    assert.match(mails[mails.length - 1].kind, /confirm/);
    return { mails: mails.length };
  });

  await step("email.confirm_from_outbox", async () => {
    const mail = await mailFor(email, "confirm");
    await app.emailPasswordAuth.confirmUser({ token: mail.token, tokenId: mail.tokenId });
    return { kind: mail.kind };
  });

  await step("email.resend_confirmation_after_confirm_fails", async () =>
    rejects(
      () => app.emailPasswordAuth.resendConfirmationEmail({ email }),
      (err) => expectServiceError(err, { errorCode: "UserAlreadyConfirmed" }),
    ),
  );

  await step("email.login", async () => {
    user = await app.logIn(Realm.Credentials.emailPassword(email, password));
    assert.match(user.id, /^[0-9a-f]{24}$/);
    assert.equal(user.providerType, "local-userpass");
    assert.equal(user.identities.length, 1);
    assert.equal(user.identities[0].providerType, "local-userpass");
    assert.equal(user.profile.email, email, "profile data.email");
    return { userId: user.id, identities: user.identities };
  });

  await step("email.wrong_password_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.emailPassword(email, `${password}-wrong`)),
      (err) => expectServiceError(err, { status: 401, errorCode: "InvalidPassword" }),
    ),
  );

  await step("email.send_reset_email", async () => {
    // realm-web attaches the current user's access token to provider routes (spec §2.3):
    // the server has to ignore it.
    await app.emailPasswordAuth.sendResetPasswordEmail({ email });
    const entry = http.log.findLast((e) => e.path.endsWith("/local-userpass/reset/send"));
    assert.ok(entry.status >= 200 && entry.status < 300);
    return { status: entry.status, sentWithAuthorization: entry.hasAuth };
  });

  await step("email.reset_bad_token_fails", async () =>
    rejects(
      () =>
        app.emailPasswordAuth.resetPassword({ token: "1".repeat(64), tokenId: "1".repeat(24), password: newPassword }),
      (err) => expectServiceError(err, { errorCode: "UserpassTokenInvalid" }),
    ),
  );

  await step("email.reset_password_from_outbox", async () => {
    const mail = await mailFor(email, "reset");
    await app.emailPasswordAuth.resetPassword({ token: mail.token, tokenId: mail.tokenId, password: newPassword });
    return { kind: mail.kind };
  });

  await step("email.reset_token_single_use", async () => {
    const mail = await mailFor(email, "reset");
    return rejects(
      () => app.emailPasswordAuth.resetPassword({ token: mail.token, tokenId: mail.tokenId, password }),
      (err) => expectServiceError(err),
    );
  });

  await step("email.logout", async () => {
    await user.logOut();
    assert.equal(app.currentUser, null);
    return null;
  });

  await step("email.login_new_password", async () => {
    const again = await app.logIn(Realm.Credentials.emailPassword(email, newPassword));
    assert.equal(again.id, user.id, "same user after a password reset");
    await again.logOut();
    return { userId: again.id };
  });

  await step("email.login_old_password_fails", async () =>
    rejects(
      () => app.logIn(Realm.Credentials.emailPassword(email, password)),
      (err) => expectServiceError(err, { status: 401, errorCode: "InvalidPassword" }),
    ),
  );

  const thirdPassword = randomPassword();
  recordSecret("password", thirdPassword);

  await step("email.reset_via_function", async () => {
    // reset/call runs the demo `reset_password` function with the extra arguments
    // (canonical EJSON); its first argument "success" resets the password at once.
    await app.emailPasswordAuth.callResetPasswordFunction({ email, password: thirdPassword }, "success");
    const again = await app.logIn(Realm.Credentials.emailPassword(email, thirdPassword));
    assert.equal(again.id, user.id);
    await again.logOut();
    return { userId: again.id };
  });

  await step("email.reset_function_refusal_fails", async () => {
    const detail = await rejects(
      () => app.emailPasswordAuth.callResetPasswordFunction({ email, password: randomPassword() }, "no"),
      (err) => expectServiceError(err, { status: "4xx" }),
    );
    // The refused reset changed nothing.
    const again = await app.logIn(Realm.Credentials.emailPassword(email, thirdPassword));
    await again.logOut();
    return detail;
  });

  await step("email.reset_send_unknown_user_fails", async () =>
    rejects(
      () => app.emailPasswordAuth.sendResetPasswordEmail({ email: uniqueEmail("nobody") }),
      (err) => expectServiceError(err, { errorCode: "UserNotFound" }),
    ),
  );
});

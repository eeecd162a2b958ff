"""What both interop suites share: the server settings and every scenario's steps."""

PROFILE_CONFIG = """\
    # Non-demo settings: custom-token claims mapped to profile data, with an audience,
    # and a server API key (whose users have profile type "server").
    app_id = "interop-profile"

    [functions]
    module = "demo"

    [providers.anon-user]
    [providers.local-userpass]

    [providers.api-key]
    server_keys = [{{ name = "interop-ci", key = "{server_key}" }}]

    [providers.custom-token]
    algorithm = "HS256"
    key = "{secret}"
    audience = "{audience}"
    metadata_fields = [
        {{ path = "name" }},
        {{ path = "email" }},
        {{ path = "given_name", field_name = "first_name" }},
        {{ path = "family_name", field_name = "last_name" }},
        {{ path = "picture" }},
        {{ path = "details.gender", field_name = "gender" }},
        {{ path = "details.birthday", field_name = "birthday" }},
        {{ path = "details.min_age", field_name = "min_age" }},
        {{ path = "details.max_age", field_name = "max_age" }},
        {{ path = "department", required = true }},
    ]
"""

#: The MongoDB scenario covers every collection operation of the client, not rules: its
#: one namespace gets an explicit, permissive rule; every other namespace keeps the demo
#: rules. (Rules are tested in tests/rules and tests/e2e/test_rules.py.)
MONGODB_COLLECTION = "items"
MONGODB_CONFIG = """\
    [functions]
    module = "demo"

    [[rules]]
    database = "appusers"
    collection = "custom_data"
    [[rules.roles]]
    name = "own custom data"
    apply_when = { user_id = "%%user.id" }
    read = true
    write = true

    [[rules]]
    database = "interop"
    collection = "items"
    [[rules.roles]]
    name = "readAndWriteAll"
    apply_when = {}
    read = true
    write = true

    [default_rule]
    [[default_rule.roles]]
    name = "owner"
    apply_when = { owner_id = "%%user.id" }
    read = true
    write = true
"""


EMAIL_PASSWORD_CONFIG = """\
    # The demo settings with App Services' own answers on the email/password routes
    # (409 AccountNameInUse, 404 UserNotFound...): the scenario checks that both clients map
    # them to their errors. The server's default (prevent_user_enumeration = true) answers
    # known and unknown addresses alike; tests/server/test_server_hostile.py covers it.
    [functions]
    module = "demo"

    [custom_data]

    [providers.anon-user]
    [providers.local-userpass]
    reset_function = "reset_password"
    prevent_user_enumeration = false
"""


#: Every scenario's steps, in order: the .mjs scripts and test_appusers_scenarios.py
#: must both run exactly these, so the two clients are held to the same list.
STEPS: dict[str, list[str]] = {
    "app_dir": [
        "appdir.anonymous_login",
        "appdir.values_and_environment",
        "appdir.private_is_unknown",
        "appdir.execute_private",
        "appdir.can_evaluate_refused",
        "appdir.request_without_credentials",
        "appdir.auth_triggers",
        "appdir.javascript_only_function",
    ],
    "anonymous": [
        "anonymous.login",
        "anonymous.tokens",
        "anonymous.profile",
        "anonymous.function_call",
        "anonymous.reuse",
        "anonymous.logout",
        "anonymous.new_login_after_logout",
        "anonymous.call_after_logout_fails",
        "anonymous.garbage_refresh_token_rejected",
    ],
    "email_password": [
        "email.register",
        "email.register_duplicate_fails",
        "email.login_before_confirm_fails",
        "email.confirm_bad_token_fails",
        "email.resend_confirmation",
        "email.confirm_from_outbox",
        "email.resend_confirmation_after_confirm_fails",
        "email.login",
        "email.wrong_password_fails",
        "email.send_reset_email",
        "email.reset_bad_token_fails",
        "email.reset_password_from_outbox",
        "email.reset_token_single_use",
        "email.logout",
        "email.login_new_password",
        "email.login_old_password_fails",
        "email.reset_via_function",
        "email.reset_function_refusal_fails",
        "email.reset_send_unknown_user_fails",
    ],
    "api_keys": [
        "keys.owner_login",
        "keys.create",
        "keys.create_second",
        "keys.list",
        "keys.fetch",
        "keys.login_with_key",
        "keys.disable",
        "keys.login_with_disabled_key_fails",
        "keys.other_key_still_works",
        "keys.enable",
        "keys.delete",
        "keys.fetch_deleted_fails",
        "keys.login_with_deleted_key_fails",
        "keys.garbage_key_fails",
        "keys.other_users_key_not_found",
    ],
    "custom_token": [
        "jwt.login",
        "jwt.function_call",
        "jwt.same_subject_same_user",
        "jwt.other_subject_other_user",
        "jwt.wrong_secret_fails",
        "jwt.expired_fails",
        "jwt.alg_none_fails",
        "jwt.missing_sub_fails",
    ],
    "link_identity": [
        "link.anonymous_login",
        "link.register_and_confirm",
        "link.link_email_password",
        "link.identities_after_link",
        "link.function_call_after_link",
        "link.login_with_linked_credentials",
        "link.identity_of_another_user_fails",
    ],
    "refresh": [
        "refresh.login",
        "refresh.revoke_then_call",
        "refresh.refresh_token_not_rotated",
        "refresh.concurrent_calls_after_revoke",
        "refresh.server_error_keeps_user",
        "refresh.revoked_session_logs_out",
    ],
    "delete_user": [
        "delete.register_login",
        "delete.logout",
        "delete.logout_twice_is_harmless",
        "delete.login_again",
        "delete.delete_user",
        "delete.login_after_delete_fails",
        "delete.register_again_is_new_user",
    ],
    "mongodb": [
        "mongo.insertOne",
        "mongo.insertOne_with_id",
        "mongo.insertMany",
        "mongo.find_filter_projection_sort_limit",
        "mongo.find_all_types_roundtrip",
        "mongo.findOne",
        "mongo.count",
        "mongo.updateOne",
        "mongo.updateOne_upsert",
        "mongo.updateMany",
        "mongo.updateMany_upsert",
        "mongo.aggregate",
        "mongo.findOneAndUpdate",
        "mongo.findOneAndReplace",
        "mongo.findOneAndDelete",
        "mongo.deleteOne",
        "mongo.deleteMany",
        "mongo.watch_insert",
        "mongo.watch_ids_update_delete",
        "mongo.watch_filter",
        "mongo.bad_operator_fails",
        "mongo.unknown_service_fails",
    ],
    "profile": [
        "profile.jwt_metadata_fields",
        "profile.jwt_required_field_missing_fails",
        "profile.jwt_wrong_audience_fails",
        "profile.email_password",
        "profile.anonymous",
        "profile.refresh_profile",
        "profile.server_api_key",
    ],
    "custom_function": [
        "function.login",
        "function.whoami",
        "function.same_payload_same_user",
        "function.other_payload_other_user",
        "function.rejected_payload_fails",
        "function.invalid_payload_fails",
    ],
    "bson_types": [
        "bson.request_is_canonical",
        "bson.echo_call",
        "bson.objectid",
        "bson.date",
        "bson.decimal128",
        "bson.long_as_realm_web_decodes_it",
        "bson.long_exact_on_the_wire",
        "bson.nested_document",
        "bson.sum_mixed_numbers",
    ],
    "custom_data": [
        "custom_data.initially_empty",
        "custom_data.set_via_function",
        "custom_data.refresh",
        "custom_data.whoami_sees_it",
        "custom_data.merge",
        "custom_data.write_through_mongo",
        "custom_data.other_user_isolated",
        "custom_data.numbers_are_plain_json",
    ],
}

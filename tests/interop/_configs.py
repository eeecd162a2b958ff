"""Server settings shared by both interop suites, so realm-web and appusers meet the same server."""

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

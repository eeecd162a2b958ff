"""custom-function login (ported from authFunc.js): the payload's username is the identity."""


def main(context, payload):
    username = payload.get("username") if isinstance(payload, dict) else None
    if not isinstance(username, str) or not username.strip():
        raise ValueError("a username is required")
    return {"id": username.strip(), "name": username.strip()}

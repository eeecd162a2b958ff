"""Email/password confirmation: addresses at tasktracker.example.com are confirmed at once."""


def main(context, details):
    if details["username"].endswith("@tasktracker.example.com"):
        return {"status": "success"}
    return {"status": "fail"}

"""Guarded by can_evaluate: only the addresses in the admins value may call it."""


def main(context):
    return {"report": "all tasks", "for": context.user.data.get("email")}

"""Values and the environment, as a client-callable function sees them."""


def main(context, name):
    return {
        "greeting": f"Hello, {name}!",
        "support": context.values.get("supportEmail"),
        "hasMailerToken": bool(context.values.get("mailerToken")),
        "missing": context.values.get("noSuchValue"),
        "environment": context.environment.tag,
        "apiBase": context.environment.values["apiBase"],
    }

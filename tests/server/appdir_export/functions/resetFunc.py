"""Password reset by function: the first extra argument must be the security answer."""


def main(context, details, *args):
    return {"status": "success" if args and args[0] == "blue" else "fail"}

"""Private and run as system: only other functions, hooks and triggers may call it."""


def main(context, *args):
    return {"system": context.running_as_system(), "caller": context.user.id, "args": list(args)}

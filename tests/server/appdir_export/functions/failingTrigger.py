"""An authentication trigger that always fails (its message must not reach the log)."""


def main(context, auth_event):
    raise RuntimeError("trigger failed while holding s3cr3t-trigger-detail")

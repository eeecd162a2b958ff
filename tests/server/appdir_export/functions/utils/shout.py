"""A nested function name: utils/shout."""


def main(context, text):
    return str(text).upper()

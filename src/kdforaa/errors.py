"""The one exception type that means "the user's input is wrong" (the CLI turns it into exit 2)."""


class BadInput(ValueError):
    """Bad input from the user: the message is one line saying what is wrong and how to fix it."""

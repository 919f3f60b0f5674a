"""The one exception type that means "the user's input is wrong" (the CLI turns it into exit 2)."""


class BadInput(ValueError):
    """Bad input from the user: the message is one line saying what is wrong and how to fix it."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and why (exit 1)."""


class Stopped(Exception):
    """Training was asked to stop by a signal; a checkpoint was written first."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class Terminated(BaseException):
    """SIGTERM arrived (outside training, which checkpoints first): unwinds like ``KeyboardInterrupt``,
    past ``except Exception``, so temporary files are removed on the way out (exit 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum

"""The one error type for user mistakes: the CLI prints it in one red line, no traceback."""


class NasError(Exception):
    """A problem the user can fix (bad input, missing file); the message says how.

    exit_code follows the CLI convention: 2 for usage errors, 1 for runtime failures.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(NasError):
    def __init__(self, message: str):
        super().__init__(message, exit_code=2)

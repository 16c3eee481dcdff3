"""The one exception type the toolchain raises for user-facing errors."""


class LicError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero."""

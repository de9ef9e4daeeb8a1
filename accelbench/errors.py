"""Errors that the CLI turns into one clear line and a non-zero exit."""

INTERRUPTED_EXIT = 130  # the shell's code for a process ended by SIGINT (Ctrl-C)


class AccelbenchError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class BackendUnavailable(AccelbenchError):
    """The requested backend cannot run on this machine (software or device missing)."""


class UsageError(AccelbenchError):
    """The user asked for something that does not exist (unknown benchmark, bad option value)."""


class ResultsError(AccelbenchError):
    """A results file is corrupt, foreign or of an unknown schema version; names the file."""


class CaseSkipped(Exception):
    """Raised by a benchmark when a case cannot run on this backend; carries the reason."""

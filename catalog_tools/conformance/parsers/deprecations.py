"""What a server says of deprecated options while it parses a command line; shared by the
parser scripts (run beside this file, in the servers' own environments)."""

import contextlib
import logging
import re
import warnings

_COLOR = re.compile(r"\x1b\[[0-9;]*m")


class Deprecations(logging.Handler):
    """Log warnings about deprecated or soon-removed options."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "deprecat" in message.lower() or "will be removed" in message.lower():
            self.messages.append(" ".join(_COLOR.sub("", message).split())[:300])


@contextlib.contextmanager
def collected(package: str, logger: str = ""):
    """Collect the deprecation warnings (logged, or DeprecationWarnings raised in the package's
    own code) of what runs inside; yields the list they end up in."""
    handler = Deprecations()
    found: list = []
    logging.getLogger(logger).addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            yield found
    finally:
        logging.getLogger(logger).removeHandler(handler)
        found += handler.messages + [str(w.message)[:300] for w in caught
                                     if issubclass(w.category, DeprecationWarning) and package in w.filename]
        found[:] = list(dict.fromkeys(found))

"""Log levels for `smeter` commands: -q errors only, default info, -v/-vv debug.

Diagnostics go to stderr through the "smeter" logger so `-q` silences progress and info lines
without touching data on stdout; errors are always printed. Library loggers (pymodbus) stay
at WARNING unless -vv.
"""
import logging
import sys

LOG = logging.getLogger("smeter")


def configure(verbose=0, quiet=False):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    LOG.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)


def info(msg):
    LOG.info(msg)


def debug(msg):
    LOG.debug(msg)


def error(msg):
    LOG.error(msg)

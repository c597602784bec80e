"""Log levels for `smeter` commands: -q errors only, default info and progress, -v debug,
-vv also the libraries' (pymodbus) debug log.

Diagnostics go to stderr so data on stdout is never mixed with them; errors are always
printed. A plain module-level level (not a logging handler) so a command called in-process
by a test prints exactly as it does from the shell.
"""
import logging
import sys

ERROR, INFO, DEBUG = 40, 20, 10
_level = [INFO]


def configure(verbose=0, quiet=False):
    _level[0] = ERROR if quiet else DEBUG if verbose else INFO
    if verbose >= 2:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)


def enabled(level=INFO):
    """True when lines of this level are shown (progress bars ask before drawing)."""
    return level >= _level[0]


def _emit(level, msg):
    if level >= _level[0]:
        print(msg, file=sys.stderr, flush=True)


def info(msg):
    _emit(INFO, msg)


def debug(msg):
    _emit(DEBUG, msg)


def error(msg):
    _emit(ERROR, msg)

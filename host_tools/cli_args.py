"""Argument types shared by every `smeter` subcommand (argparse `type=` callables).

Each one turns text into a checked value or raises argparse.ArgumentTypeError with a
message naming what was expected, so argparse prints the subcommand's usage and that one
line and exits 2 (USAGE). One home, so `--tcp 127.0.0.1:99999` or `--speed 1e308` are
refused the same way by every command instead of failing later with a traceback.
"""
import argparse
import math
import os

from host_tools.atomic_output import OutputError, check_dir, check_file

_Bad = argparse.ArgumentTypeError

# Largest finite value any command takes for a time, rate or factor: beyond it, time
# arithmetic in ms overflows doubles' exact integers (2**53 ms is 285,000 years).
MAX_FINITE = 1e12


def hostport(text):
    """'HOST:PORT' (port 0..65535; IPv6 as [::1]:PORT) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit():
        raise _Bad("expected HOST:PORT, e.g. 127.0.0.1:5020, got %r" % text)
    if int(port) > 65535:
        raise _Bad("port %s out of range 0..65535 in %r" % (port, text))
    return host, int(port)


def _number(text, kind):
    try:
        v = kind(text)
    except (TypeError, ValueError):
        raise _Bad("expected a%s number, got %r" % (
            "n integer" if kind is int else "", text)) from None
    if kind is float and not math.isfinite(v):
        raise _Bad("expected a finite number, got %r" % text)
    if abs(v) > MAX_FINITE:
        raise _Bad("%r is out of range (at most %g)" % (text, MAX_FINITE))
    return v


def finite_float(text):
    return _number(text, float)


def positive_float(text):
    v = _number(text, float)
    if v <= 0:
        raise _Bad("expected a number > 0, got %r" % text)
    return v


def nonnegative_float(text):
    v = _number(text, float)
    if v < 0:
        raise _Bad("expected a number >= 0, got %r" % text)
    return v


def positive_int(text):
    v = _number(text, int)
    if v <= 0:
        raise _Bad("expected an integer > 0, got %r" % text)
    return v


def nonnegative_int(text):
    v = _number(text, int)
    if v < 0:
        raise _Bad("expected an integer >= 0, got %r" % text)
    return v


def int_range(lo, hi):
    """An integer type accepting lo..hi inclusive."""
    def check(text):
        v = _number(text, int)
        if not lo <= v <= hi:
            raise _Bad("expected an integer %d..%d, got %r" % (lo, hi, text))
        return v
    check.__name__ = "integer %d..%d" % (lo, hi)
    return check


def unix_time(text):
    """Unix seconds or ISO 8601 with a UTC offset -> float seconds, within years 1970..9999."""
    import datetime

    try:
        v = float(text)
    except ValueError:
        try:
            t = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise _Bad("expected unix seconds or ISO 8601 with offset, got %r" % text) from None
        if t.tzinfo is None:
            raise _Bad("time %r needs a UTC offset, e.g. +09:00" % text)
        return t.timestamp()
    if not (math.isfinite(v) and 0 <= v < 253402300800):
        raise _Bad("time %r is not between 1970 and 9999 (unix seconds)" % text)
    return v


def output_file(text):
    """A file path that can be created or replaced (checked before any work is done)."""
    try:
        return check_file(text)
    except OutputError as exc:
        raise _Bad(str(exc)) from None


def output_dir(text):
    """A directory path that can be created or replaced (checked before any work is done)."""
    try:
        return check_dir(text)
    except OutputError as exc:
        raise _Bad(str(exc)) from None


def input_file(text):
    if not os.path.isfile(text):
        raise _Bad("%s: no such file" % text if not os.path.exists(text)
                   else "%s: not a regular file" % text)
    return text

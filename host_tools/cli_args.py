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


def _at_least(kind, lo, strict):
    """A type for numbers of `kind` above lo (strict) or from lo on."""
    def check(text):
        v = _number(text, kind)
        if v < lo or (strict and v == lo):
            raise _Bad("expected a%s %s %s %s, got %r" % (
                "n" if kind is int else "", "integer" if kind is int else "number",
                ">" if strict else ">=", lo, text))
        return v
    return check


positive_float = _at_least(float, 0, True)
nonnegative_float = _at_least(float, 0, False)
positive_int = _at_least(int, 0, True)
nonnegative_int = _at_least(int, 0, False)


def checked_by(parse, errors=(ValueError,)):
    """A type that keeps the text but checks it with parse(text) now, so a bad value is a
    usage error at parse time rather than a traceback later."""
    def check(text):
        try:
            parse(text)
        except errors as exc:
            raise _Bad(str(exc)) from None
        return text
    return check


def int_range(lo, hi):
    """An integer type accepting lo..hi inclusive."""
    def check(text):
        v = _number(text, int)
        if not lo <= v <= hi:
            raise _Bad("expected an integer %d..%d, got %r" % (lo, hi, text))
        return v
    check.__name__ = "integer %d..%d" % (lo, hi)
    return check


def byte_size(minimum=1, maximum=1 << 30):
    """'32K', '1M' or bytes, within minimum..maximum; the text is kept (passed on as given)."""
    def check(text):
        t = text.strip().upper()
        mult = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
        digits = t[:-1] if mult > 1 else t
        if not digits.isdigit():
            raise _Bad("expected a size like 32K, 1M or 4096, got %r" % text)
        n = int(digits) * mult
        if n < minimum:
            raise _Bad("size %s is below the minimum %dK" % (text, minimum // 1024))
        if n > maximum:
            raise _Bad("size %s is above the maximum %dM" % (text, maximum // (1024 * 1024)))
        return text.strip()
    check.__name__ = "size"
    return check


def board_heap(text):
    """A board image's heap (MICROPY_HEAP_SIZE): bytes or NK, a multiple of 4, at least 8K -> int."""
    t = text.strip().upper()
    mult = 1024 if t.endswith("K") else 1
    try:
        n = int(t[:-1] if t.endswith("K") else t) * mult
    except ValueError:
        raise _Bad("heap size must be bytes or NK (e.g. 48K), got %r" % text)
    if n < 8192 or n % 4:
        raise _Bad("heap size must be a multiple of 4 and at least 8K")
    return n


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

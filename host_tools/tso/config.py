"""TSO rules as configuration: defaults in hw/tso/rules.json (each with its source), overrides
merged key by key from a user file.

An override may only name keys the defaults have (a misspelt key would otherwise be ignored
silently and the default used): the one exception is a map listed in OPEN_MAPS, whose new
entries must look like its existing ones. Every refusal is a ConfigError naming the file and
the key."""
import copy
import json
import os

import numpy as np

from host_tools.tso.errors import TsoError

DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "hw", "tso", "rules.json")

# maps a user may extend with entries of their own (shaped like the existing entries)
OPEN_MAPS = (("negawatt", "tariffs"),)


class ConfigError(TsoError, ValueError):
    """A configuration file that cannot be used: bad JSON or a key the defaults lack."""

    kind = "tso_config"


def _merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _check_keys(over, base, path, where):
    """Raise ConfigError for the first key of `over` that `base` does not have."""
    if not isinstance(over, dict):
        return
    open_map = tuple(path) in OPEN_MAPS
    for key, value in over.items():
        name = ".".join(path + [str(key)])
        if key in base:
            ref = base[key]
        elif open_map and base:
            ref = next(iter(base.values()))  # a new entry: shaped like an existing one
        else:
            raise ConfigError("%s: unknown key '%s' (the defaults have no such key)"
                              % (where, name))
        if isinstance(value, dict) and isinstance(ref, dict):
            _check_keys(value, ref, path + [str(key)], where)
        elif isinstance(value, list) and isinstance(ref, list):
            known = {}
            for item in ref:
                if isinstance(item, dict):
                    known.update(item)
            for i, item in enumerate(value):
                if isinstance(item, dict) and known:
                    _check_keys(item, known, path + ["%s[%d]" % (key, i)], where)


def read_json(path):
    """A JSON object from `path`; ConfigError naming the file for bad JSON or no object."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ConfigError("%s: invalid JSON: line %d column %d: %s"
                          % (path, exc.lineno, exc.colno, exc.msg)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("%s: not UTF-8 text: %s" % (path, exc.reason)) from None
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    if not isinstance(doc, dict):
        raise ConfigError("%s: must hold a JSON object, not %s" % (path, type(doc).__name__))
    return doc


def load_layered(default_path, path=None, overrides=None):
    """A JSON default file, merged key by key with a user file and in-memory overrides."""
    cfg = read_json(default_path)
    if path:
        user = read_json(path)
        _check_keys(user, cfg, [], path)
        _merge(cfg, user)
    if overrides:
        _check_keys(overrides, cfg, [], "overrides")
        _merge(cfg, copy.deepcopy(overrides))
    return cfg


def load_rules(path=None, overrides=None):
    rules = load_layered(DEFAULT_PATH, path, overrides)
    check_rules(rules, path or DEFAULT_PATH)
    return rules


def _int_in(rules, dotted, lo, hi, where):
    node = rules
    for part in dotted.split("."):
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int) or not lo <= node <= hi:
        raise ConfigError("%s: %s must be an integer in %d..%d, not %r"
                          % (where, dotted, lo, hi, node))
    return node


def check_rules(rules, where):
    """Every number of the rules inside the range its meaning allows (ConfigError names it)."""
    gm = "group_management."
    n_res = _int_in(rules, gm + "max_resources_per_list_pattern", 1, 10**7, where)
    _int_in(rules, gm + "max_list_patterns", 1, 10**6, where)
    # micro-Wh sums over every resource of a list pattern must stay inside int64
    _int_in(rules, "correction.max_abs_wh_per_slot", 1, (2**63 - 1) // (10**6 * n_res), where)
    _int_in(rules, "correction.max_bg_plan_wh_per_slot", 0, 2**62, where)
    for pattern, basis in rules["correction"]["plan_basis"].items():
        if basis not in ("sending", "generation"):
            raise ConfigError("%s: correction.plan_basis.%s must be 'sending' or 'generation', "
                              "not %r" % (where, pattern, basis))
    h = "baseline.high4of5."
    like = _int_in(rules, h + "like_days", 1, 31, where)
    _int_in(rules, h + "keep_days", 1, like, where)
    hlike = _int_in(rules, h + "holiday_like_days", 1, 31, where)
    _int_in(rules, h + "holiday_keep_days", 1, hlike, where)
    _int_in(rules, h + "lookback_days", max(like, hlike), 366, where)
    _int_in(rules, h + "low_day_ratio_pct", 0, 100, where)
    start = _int_in(rules, h + "adjust_start_hours_before", 0, 24, where)
    _int_in(rules, h + "adjust_end_hours_before", 0, start, where)
    cfg = rules["baseline"]["high4of5"]
    cal = cfg.get("holiday_calendar")
    if cal is not None and not (isinstance(cal, str) and cal):
        raise ConfigError("%s: %sholiday_calendar must be a country code such as \"JP\" or "
                          "null, not %r" % (where, h, cal))
    for day in cfg.get("holidays", ()):
        try:
            ok = isinstance(day, str) and str(np.datetime64(day, "D")) == day
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError("%s: %sholidays holds ISO dates (YYYY-MM-DD), not %r"
                              % (where, h, day))
    if cfg.get("dr_days_scope", "resource") not in ("resource", "group"):
        raise ConfigError("%s: %sdr_days_scope must be 'resource' or 'group', not %r"
                          % (where, h, cfg.get("dr_days_scope")))


def plan_basis(rules, pattern):
    """'sending' (送端) or 'generation' (発端) for device-point plans under `pattern`."""
    basis = rules["correction"]["plan_basis"][str(pattern)]
    if basis not in ("sending", "generation"):
        raise ValueError("plan basis must be 'sending' or 'generation', not %r" % (basis,))
    return basis

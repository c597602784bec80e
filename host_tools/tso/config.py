"""TSO rules as configuration: defaults in hw/tso/rules.json (each with its source), overrides
merged key by key from a user file.

An override may only name keys the defaults have (a misspelt key would otherwise be ignored
silently and the default used): the one exception is a map listed in OPEN_MAPS, whose new
entries must look like its existing ones. Every refusal is a ConfigError naming the file and
the key."""
import copy
import json
import os

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
    return load_layered(DEFAULT_PATH, path, overrides)


def plan_basis(rules, pattern):
    """'sending' (送端) or 'generation' (発端) for device-point plans under `pattern`."""
    basis = rules["correction"]["plan_basis"][str(pattern)]
    if basis not in ("sending", "generation"):
        raise ValueError("plan basis must be 'sending' or 'generation', not %r" % (basis,))
    return basis

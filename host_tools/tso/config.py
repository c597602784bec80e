"""TSO rules as configuration: defaults in hw/tso/rules.json (each with its source), overrides
merged key by key from a user file."""
import copy
import json
import os

DEFAULT_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "hw", "tso", "rules.json")


def _merge(base, over):
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_layered(default_path, path=None, overrides=None):
    """A JSON default file, merged key by key with a user file and in-memory overrides."""
    with open(default_path, encoding="utf-8") as f:
        cfg = json.load(f)
    if path:
        with open(path, encoding="utf-8") as f:
            _merge(cfg, json.load(f))
    if overrides:
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

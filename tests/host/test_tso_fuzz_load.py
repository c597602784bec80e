"""Fuzzed data sets: loading, validating and correcting damaged files either works or
fails with a typed TsoError (LoadError, ValidationError, PatternError), never anything else."""
import os
import shutil

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from host_tools.tso import config, correction, generate, model, validate
from host_tools.tso.errors import TsoError

RULES = config.load_rules()
TABLES = ("balancing_groups", "resources", "groups", "members", "bg_plans", "events",
          "receiving", "device", "device_plans", "list_patterns")


def _base(tmp):
    path = os.path.join(tmp, "base")
    if not os.path.exists(path):
        generate.generate(40, days=8, seed=2).save(path, "csv")
    return path


mutation = st.tuples(
    st.sampled_from(TABLES),
    st.sampled_from(["cell", "truncate", "dup_line", "drop_line", "drop_column", "delete",
                     "garbage"]),
    st.integers(0, 10**6), st.integers(0, 10**6),
    st.sampled_from(["", "x", "-1", "0", "49", "999999999999999999999", "1.5", "2026-02-30",
                     "R0000000", "D01", "G01", "m", "M", '"', "\u53d7\u96fb\u70b9"]))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_damaged_data_sets_fail_typed(tmp_path_factory, mutations):
    tmp = str(tmp_path_factory.getbasetemp())
    work = os.path.join(tmp, "work")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(_base(tmp), work)
    for table, kind, a, b, text in mutations:
        path = os.path.join(work, table + ".csv")
        if not os.path.exists(path):
            continue
        if kind == "delete":
            os.unlink(path)
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        if kind == "garbage":
            with open(path, "wb") as f:
                f.write(bytes(np.random.default_rng(a).integers(0, 256, b % 300, np.uint8)))
            continue
        if kind == "truncate":
            lines = lines[: a % (len(lines) + 1)]
        elif kind == "dup_line" and len(lines) > 1:
            lines.append(lines[1 + a % (len(lines) - 1)])
        elif kind == "drop_line" and len(lines) > 1:
            del lines[1 + a % (len(lines) - 1)]
        elif kind == "drop_column":
            cols = [line.split(",") for line in lines]
            k = a % len(cols[0])
            lines = [",".join(c[:k] + c[k + 1:]) for c in cols]
        elif kind == "cell" and len(lines) > 1:
            i = 1 + a % (len(lines) - 1)
            cells = lines[i].split(",")
            cells[b % len(cells)] = text
            lines[i] = ",".join(cells)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    try:
        data = model.load(work)
        validate.validate(data, RULES)
        for pattern in (1, 2, 3):
            try:
                correction.correct(data, RULES, pattern)
            except correction.PatternError:
                assert pattern == 3
    except TsoError:
        pass

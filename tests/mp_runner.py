"""Runs plain-assert test modules inside MicroPython (and CPython, for debugging).

The same test bodies that pytest collects under CPython run here unchanged:
usage `micropython tests/mp_runner.py test_crc [test_cbor ...]` with MICROPYPATH set
to the repository root and tests/portable (see tests/conftest.py).
"""
import sys


def run_module(name):
    from runtime import Skip

    passed = 0
    failed = 0
    skipped = 0
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        try:
            fn()
        except Skip as e:  # does not apply to this runtime (tests/portable/runtime.py)
            skipped += 1
            print("SKIP", name + "." + attr + ":", e.args[0])
        except Exception as e:  # report every failure, keep going
            failed += 1
            print("FAIL", name + "." + attr)
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
            else:
                import traceback

                traceback.print_exc()
        else:
            passed += 1
            print("PASS", name + "." + attr)
    return passed, failed, skipped


def main(names):
    passed = 0
    failed = 0
    skipped = 0
    for name in names:
        p, f, s = run_module(name)
        passed += p
        failed += f
        skipped += s
    print("mp_runner:", passed, "passed,", skipped, "skipped,", failed, "failed")
    if failed or not passed:
        sys.exit(1)


main(sys.argv[1:])

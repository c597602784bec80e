"""One meaning per exit status across every `smeter` subcommand (docs/commands/exit-codes.md).

Scripts and CI pipelines branch on these, so a number never changes meaning between commands.
"""

OK = 0            # the work was done; for a check: PASS
FAILED = 1        # the check ran to the end and what it checked failed (FAIL verdict, data lost)
USAGE = 2         # bad arguments, unreadable/invalid input or config, unwritable output (nothing done)
INCOMPLETE = 3    # not enough data to decide (a check that cannot give PASS or FAIL)
ENVIRONMENT = 4   # the machine refused: port in use, missing tool/package, a child process died
INTERRUPTED = 130  # SIGINT/SIGTERM: stopped by the user; says what was and was not written

NAMES = {OK: "ok", FAILED: "failed", USAGE: "usage", INCOMPLETE: "incomplete",
         ENVIRONMENT: "environment", INTERRUPTED: "interrupted"}

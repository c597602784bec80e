"""Typed errors of the TSO tools: a stable `kind` and the full list of offenders."""
from edge.errors import EdgeError


class TsoError(EdgeError):
    """Bad TSO input. `problems` lists every rule broken, each naming all its offenders."""

    kind = "tso"

    def __init__(self, message, problems=()):
        EdgeError.__init__(self, message, detail=list(problems))
        self.problems = list(problems)


class ValidationError(TsoError):
    kind = "tso_validation"


class LoadError(TsoError):
    kind = "tso_load"


class Problem:
    """One broken rule: `kind` (stable string), a sentence, and every offender named."""

    __slots__ = ("kind", "text", "offenders")

    def __init__(self, kind, text, offenders):
        self.kind = kind
        self.text = text
        self.offenders = list(offenders)

    def __str__(self):
        return "%s: %s (%d): %s" % (
            self.kind, self.text, len(self.offenders), ", ".join(str(o) for o in self.offenders))

    def __repr__(self):
        return "Problem(%r, %d offenders)" % (self.kind, len(self.offenders))


def raise_if(problems, cls=ValidationError):
    if problems:
        raise cls("\n".join(str(p) for p in problems), problems)

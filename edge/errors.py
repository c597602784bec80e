"""Typed errors of the edge core.

Every error carries a short stable `kind` string so the agent can count faults by kind
without parsing messages. Nothing in edge/ raises anything else on bad input.
"""


class EdgeError(Exception):
    kind = "edge"

    def __init__(self, message, detail=None):
        # super(), not Exception.__init__: MicroPython cannot reach the latter by name.
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self):
        return self.message

"""Typed errors of the edge core.

Every error carries a short stable `kind` string so the agent can count faults by kind
without parsing messages. Nothing in edge/ raises anything else on bad input.
"""


class EdgeError(Exception):
    kind = "edge"

    def __init__(self, message, detail=None):
        Exception.__init__(self, message)
        self.message = message
        self.detail = detail

    def __str__(self):
        return self.message

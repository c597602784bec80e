"""The runner's last-resort handler (firmware/agent_main.Runner.turn) survives a MemoryError
raised while it handles one: on a 48 KB board reading the clock to log an internal fault
once raised again, left the handler, and ended the agent."""
import os
import sys

from conftest import ROOT

sys.path[0:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "firmware", "lib")]
try:
    import agent_main
finally:
    del sys.path[0:2]


class _Log:
    def __init__(self):
        self.faults = []

    def fault(self, kind, t, detail=None):
        self.faults.append((kind, detail))


class _Clock:
    """A metering clock whose reads fail with MemoryError while `starved`."""

    def __init__(self):
        self.starved = False

    def now(self):
        if self.starved:
            raise MemoryError("injected")
        return 1000, 0


class _ClockSync:
    def meter_into(self, s, ms, out):
        out[0], out[1] = s, ms


class _Port:
    def ensure(self):
        return False  # open already

    def read_available(self, wait_ms):
        return b""

    def write(self, data):
        pass


class _Agent:
    def __init__(self, clock):
        self.log = _Log()
        self.clock = _ClockSync()
        self._board = clock

    def service(self, *a):
        self._board.starved = True  # the heap runs out in the turn, and stays out
        raise MemoryError("injected")


def test_a_memory_error_inside_the_handler_does_not_end_the_agent():
    clock = _Clock()
    agent = _Agent(clock)
    r = agent_main.Runner(agent, clock, _Port(), _Port())
    assert r.turn(1) == 100  # the radio turn failed, then so did logging it: no raise
    clock.starved = False
    agent.service = lambda *a: (_ for _ in ()).throw(MemoryError("again"))
    assert r.turn(1) == 100 and agent.log.faults == [("internal_radio", "MemoryError")]

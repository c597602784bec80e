"""The agent in the MicroPython unix port (or CPython) on a host: `smeter agent` runs this.

    micropython -X heapsize=256K firmware/unix/main.py CONFIG [--clock FILE]
        [--data-heap BYTES] [--until EDGE_S] [--for SIM_S]

with MICROPYPATH=<repo>:<repo>/firmware:<repo>/firmware/lib:.frozen (CPython: PYTHONPATH).
--clock reads the shared simulated clock file (host_tools/emulator/simclock.py) instead of
the system clock; --data-heap leaves only that much free heap after the imports (a board
keeps the code frozen in flash, the unix port keeps it in the heap); --until/--for stop the
run at an edge second / after a span of metering time (exit 0). Exit 2: bad config.
"""
import sys

import agent_main
import clocks


def _size(text):
    t = text.upper()
    if t.endswith("K"):
        return int(t[:-1]) * 1024
    if t.endswith("M"):
        return int(t[:-1]) * 1024 * 1024
    return int(t)


def parse(argv):
    opts = {"config": None, "clock": None, "data_heap": None, "until": None, "for": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--clock", "--data-heap", "--until", "--for"):
            if i + 1 >= len(argv):
                raise ValueError(a + " needs a value")
            v = argv[i + 1]
            if a == "--clock":
                opts["clock"] = v
            elif a == "--data-heap":
                opts["data_heap"] = _size(v)
            elif a == "--until":
                opts["until"] = int(v)
            else:
                opts["for"] = int(v)
            i += 2
            continue
        if a.startswith("-"):
            raise ValueError("unknown option " + a)
        if opts["config"] is not None:
            raise ValueError("one CONFIG only")
        opts["config"] = a
        i += 1
    if opts["config"] is None:
        raise ValueError("usage: main.py CONFIG [--clock FILE] [--data-heap N] [--until S] [--for S]")
    return opts


def run(argv):
    try:
        o = parse(argv)
    except ValueError as e:
        sys.stdout.write("agent: %s\n" % e)
        return 2
    try:
        clock = clocks.SimFileClock(o["clock"]) if o["clock"] else clocks.SystemClock()
    except OSError as e:
        sys.stdout.write("t=0 ev=start_error kind=clock msg=%s\n" % str(e).replace(" ", "_"))
        return 2
    stop = o["until"]
    if o["for"] is not None:
        stop = clock.now()[0] + o["for"]
    return agent_main.main(o["config"], clock=clock, stop_at=stop, data_heap=o["data_heap"])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

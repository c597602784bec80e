"""The storage contract of edge/persist.py in RAM, with simulated power cuts (tests, host
tools, benchmarks). Kept out of edge/persist.py so boards, which never load it, spend no
heap on it: firmware/manifest.py does not freeze it (docs/flashing.md#memory).
"""
from edge.persist import StoreError


class PowerCut(StoreError):
    """Raised by MemStorage when a simulated power cut hits; the device is dead after it."""

    def __init__(self):
        StoreError.__init__(self, "power_cut", "simulated power cut")


class MemStorage:
    """The storage contract in RAM, with power cuts at any byte of any write.

    cut_after(units) arms a cut: each written byte costs one unit, each sync() and
    replace() one unit. When the budget runs out inside a write, only its first bytes
    land (a torn write), then PowerCut is raised and every later call raises too.
    power_cycle(keep) models the restart: durable bytes stay; each write not yet synced
    survives only if keep(i) is true for its index i in that file's pending list (lost,
    kept, torn or reordered unsynced data). Boards and tests without flash can also use it
    as a plain RAM store.
    """

    def __init__(self):
        self._durable = {}
        self._live = {}
        self._pending = {}
        self._budget = -1
        self.dead = False
        self.writes = 0
        self.syncs = 0
        self.replaces = 0
        self.bytes_written = 0

    def cut_after(self, units):
        self._budget = units

    def _spend(self, cost):
        if self.dead:
            raise PowerCut()
        if self._budget < 0:
            return cost
        if self._budget < cost:
            allowed = self._budget
            self._budget = 0
            self.dead = True
            return allowed
        self._budget -= cost
        return cost

    def read(self, name, offset, n):
        if self.dead:
            raise PowerCut()
        f = self._live.get(name)
        if f is None:
            return b""
        return f.read(offset, n)

    def write(self, name, offset, data):
        done = self._spend(len(data))
        if done:
            data = bytes(data[:done])
            f = self._live.get(name)
            if f is None:
                f = _PagedFile()
                self._live[name] = f
                self._durable.setdefault(name, None)
            f.write(offset, data)
            self._pending.setdefault(name, []).append((offset, data))
            self.writes += 1
            self.bytes_written += len(data)
        if self.dead:
            raise PowerCut()

    def sync(self, name):
        self._spend(1)
        if self.dead:
            raise PowerCut()
        pending = self._pending.pop(name, None)
        if pending:
            d = self._durable.get(name)
            if d is None:
                d = _PagedFile()
                self._durable[name] = d
            for offset, data in pending:  # in place: no copy of the whole file per sync
                d.write(offset, data)
        self.syncs += 1

    def load(self, name):
        if self.dead:
            raise PowerCut()
        f = self._live.get(name)
        return None if f is None else f.read(0, f.size)

    def replace(self, name, data):
        self._spend(1)
        if self.dead:
            raise PowerCut()
        self._durable[name] = _PagedFile(data)
        self._live[name] = _PagedFile(data)
        self._pending.pop(name, None)
        self.replaces += 1
        self.bytes_written += len(data)

    def power_cycle(self, keep=None):
        """Lose power now (if not already) and boot again."""
        for name in list(self._live):
            pending = self._pending.get(name)
            if not pending:
                continue  # live and durable bytes are equal
            d = self._durable.get(name)
            if d is None:
                d = _PagedFile()
            i = 0
            for offset, data in pending:
                if keep is not None and keep(i):
                    d.write(offset, data)
                i += 1
            if self._durable.get(name) is None and not d.size:
                del self._live[name]  # never synced, nothing kept: the file never existed
                del self._durable[name]
            else:
                self._durable[name] = d
                self._live[name] = d.copy()
        self._pending = {}
        self._budget = -1
        self.dead = False


_PAGE = 256


class _PagedFile:
    """A file's bytes in fixed pages, so a file that grows a little at a time never
    reallocates one block the size of the whole file: on MicroPython every such regrowth
    left a hole behind, and a long test run's heap fragmented until a 6 KB file could not
    grow on a 512 KB heap with half of it free."""

    def __init__(self, data=b""):
        self.pages = []
        self.size = 0
        if data:
            self.write(0, data)

    def write(self, offset, data):
        end = offset + len(data)
        pages = self.pages
        while len(pages) * _PAGE < end:
            pages.append(bytearray(_PAGE))  # a new page is zeros: the gap a write skips
        if end > self.size:
            self.size = end
        i = 0
        n = len(data)
        while i < n:
            p, o = divmod(offset + i, _PAGE)
            k = min(_PAGE - o, n - i)
            pages[p][o : o + k] = data[i : i + k]
            i += k

    def read(self, offset, n):
        end = min(offset + n, self.size)
        out = bytearray(end - offset if end > offset else 0)
        i = 0
        while offset + i < end:
            p, o = divmod(offset + i, _PAGE)
            k = min(_PAGE - o, end - offset - i)
            out[i : i + k] = self.pages[p][o : o + k]
            i += k
        return bytes(out)

    def copy(self):
        c = _PagedFile()
        c.pages = [bytearray(p) for p in self.pages]
        c.size = self.size
        return c

"""Files in one directory behind the storage contract of edge/persist.py.

Runs on MicroPython (littlefs/FAT on boards, the unix port) and CPython: only open(),
seek/read/write/flush, os.rename/os.remove/os.mkdir, so no os.read/os.write. Durability:
on CPython sync() is flush + os.fsync (and replace() also fsyncs the directory); on
MicroPython flush() is the sync (littlefs/FAT commit, fsync on the unix port).

replace() writes NAME.tmp, syncs it, then renames it over NAME. POSIX and littlefs rename
atomically; FAT refuses to rename onto an existing file, so there the old file is removed
first and a boot that finds only NAME.tmp finishes the rename (the tmp was complete before
the remove). Callers check a CRC, so a torn tmp from a first-ever replace reads as absent.
"""
import os

_fsync = getattr(os, "fsync", None)
_ZERO = bytes(128)


class FlashStore:
    def __init__(self, directory):
        self._dir = directory
        self._files = {}
        try:
            os.mkdir(directory)
        except OSError:
            pass  # exists

    def _path(self, name):
        return self._dir + "/" + name

    def _recover(self, name):
        """Finish a replace() that a power cut interrupted between remove and rename."""
        path = self._path(name)
        try:
            os.stat(path)
            return
        except OSError:
            pass
        try:
            os.rename(path + ".tmp", path)
        except OSError:
            pass

    def _open(self, name, create):
        f = self._files.get(name)
        if f is None:
            self._recover(name)
            path = self._path(name)
            try:
                f = open(path, "r+b")
            except OSError:
                if not create:
                    return None
                f = open(path, "w+b")
            self._files[name] = f
        return f

    def read(self, name, offset, n):
        f = self._open(name, False)
        if f is None:
            return b""
        f.seek(offset)
        return f.read(n) or b""

    def write(self, name, offset, data):
        """A write past the end pads the gap with zero bytes in 128-byte pieces: the slot
        ring's first record can land several KB past the end, and one bytes(gap) of that
        size is a MemoryError in a 32 KB heap."""
        f = self._open(name, True)
        end = f.seek(0, 2)
        z = _ZERO
        while end < offset:
            n = offset - end
            piece = z if n >= len(z) else z[:n]
            f.write(piece)
            end += len(piece)
        f.seek(offset)
        f.write(data)

    def sync(self, name):
        f = self._files.get(name)
        if f is None:
            return
        f.flush()
        if _fsync is not None:
            _fsync(f.fileno())

    def load(self, name):
        self._recover(name)
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def replace(self, name, data):
        f = self._files.pop(name, None)
        if f is not None:
            f.close()
        path = self._path(name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if _fsync is not None:
                _fsync(f.fileno())
        try:
            os.rename(tmp, path)
        except OSError:
            os.remove(path)
            os.rename(tmp, path)
        self._sync_dir()

    def _sync_dir(self):
        if _fsync is None or not hasattr(os, "open"):
            return
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            _fsync(fd)
        finally:
            os.close(fd)

    def close(self):
        for name in list(self._files):
            self._files.pop(name).close()

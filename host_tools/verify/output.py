"""Write report files so a reader never sees a half-written one: each file goes to a
temporary name in its directory and is renamed over the final name (atomic on POSIX).

Local to verify until the shared helper of the CLI work lands; same idea, fold it in then.
"""
import os
import tempfile


class Written:
    """Which files a run has finished, so an interrupted run can say what is and is not there."""

    def __init__(self):
        self.done = []
        self.pending = []

    def summary(self):
        out = []
        if self.done:
            out.append("written: " + ", ".join(self.done))
        if self.pending:
            out.append("not written: " + ", ".join(self.pending))
        return "; ".join(out) or "nothing was written"


def write_atomic(path, data, written=None):
    """Write bytes or str to path via a temporary file in the same directory, then rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # what open() would have given, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if written is not None:
        if path in written.pending:
            written.pending.remove(path)
        written.done.append(path)
    return path

"""Output files and directories that appear complete or not at all (docs/commands/conventions.md#outputs).

A command killed half-way (Ctrl-C, SIGTERM, a crash) must not leave a new half-written file,
or a mix of new and old files, looking like a finished result. So every output is written
under a temporary name in the same directory (same file system, so the final rename is
atomic) and moved into place only when complete; on failure the temporary is removed and the
previous version, if any, stays as it was.

    check_file(path)            raise OutputError now if path could never be written
    check_dir(path)             the same for an output directory
    with atomic_file(path) as f: f.write(...)          # text (or mode="wb")
    with atomic_path(path) as tmp: pq.write_table(t, tmp)   # libraries that take a path
    with atomic_dir(path) as tmp: ... write files under tmp ...
    outputs = Outputs("smeter demo"); ...; outputs.interrupted()   # what was / was not written

Check outputs with check_file/check_dir BEFORE the work starts: an unwritable --out found
after an hour of work loses the hour.
"""
import contextlib
import os
import shutil
import sys

_TMP = ".%s.partial-%d"


class OutputError(Exception):
    """An output path that cannot be written (missing parent, a directory, no permission)."""


def _tmp_name(path):
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, _TMP % (base, os.getpid()))


def _check_parent(path, what):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError("%s: cannot write %s: directory %s does not exist" % (path, what, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError("%s: cannot write %s: directory %s is not writable" % (path, what, parent))


def check_file(path):
    """Raise OutputError unless `path` can be created or replaced as a file."""
    if os.path.isdir(path):
        raise OutputError("%s: is a directory, expected a file name" % path)
    if os.path.exists(path) and not os.path.isfile(path):
        raise OutputError("%s: exists and is not a regular file" % path)
    _check_parent(path, "a file")
    return path


def check_dir(path):
    """Raise OutputError unless `path` can be created, or replaced, as an output directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError("%s: exists and is not a directory" % path)
    _check_parent(path, "a directory")
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block completes."""
    check_file(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path, mode="w", encoding="utf-8", newline=None):
    """An open file that becomes `path` when the block completes (and is synced to disk)."""
    with atomic_path(path) as tmp:
        kw = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text):
    with atomic_file(path) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_dir(path, keep_partial=False):
    """Yield an empty temporary directory beside `path`; when the block completes it becomes
    `path` (an existing `path` is moved aside first and then deleted). On failure the
    temporary is removed, or kept (keep_partial) and its name attached to the exception as
    `partial_dir` so the caller can say where the partial files are."""
    check_dir(path)
    tmp = _tmp_name(path)
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException as exc:
        if keep_partial:
            exc.partial_dir = tmp
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, path)


def replace_dir(tmp, path):
    """Move directory tmp to path, replacing whatever directory is there."""
    old = None
    if os.path.lexists(path):
        old = _tmp_name(path) + ".old"
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class Outputs:
    """What a command has written so far, to say so when it is interrupted or fails."""

    def __init__(self, command, planned=()):
        self.command = command
        self.planned = list(planned)
        self.written = []

    def plan(self, path):
        if path and path not in self.planned:
            self.planned.append(path)
        return path

    def done(self, path):
        self.written.append(path)

    def describe(self):
        wrote = [p for p in self.planned if p in self.written]
        not_wrote = [p for p in self.planned if p not in self.written]
        parts = []
        if wrote:
            parts.append("wrote %s" % ", ".join(wrote))
        if not_wrote:
            parts.append("not written (previous version, if any, left unchanged): %s"
                         % ", ".join(not_wrote))
        return "; ".join(parts) or "no output files"

    def interrupted(self, stream=None):
        print("%s: interrupted; %s" % (self.command, self.describe()),
              file=stream or sys.stderr, flush=True)

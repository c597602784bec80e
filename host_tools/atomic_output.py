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
    with atomic_dir(path, owned=NAMES) as tmp: ... write files under tmp ...

Check outputs with check_file/check_dir BEFORE the work starts: an unwritable --out found
after an hour of work loses the hour.
"""
import contextlib
import os
import shutil

_TMP = ".%s.partial-%d%s"


class OutputError(Exception):
    """An output path that cannot be written (missing parent, a directory, no permission)."""


def _tmp_name(path):
    """.NAME.partial-PID.EXT beside path: hidden, ours by pid, and the extension kept for
    writers that pick a format by it (matplotlib's savefig)."""
    d, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    return os.path.join(d, _TMP % (stem, os.getpid(), ext))


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
def atomic_dir(path, owned=(), keep_partial=False):
    """Yield an empty temporary directory beside `path`; when the block completes, every entry
    made in it is moved into `path` (created if absent), replacing a file or directory of the
    same name, and the names in `owned` that this run did not make (a previous run's outputs,
    e.g. a chart not drawn this time) are deleted. Other files in `path` are the user's and are
    left alone, so `--out .` is safe. The moves run with SIGINT/SIGTERM blocked: an interrupt
    lands before them (nothing changed) or after (all in place).

    On failure the temporary is removed, or kept (keep_partial) and its name attached to the
    exception as `partial_dir` so the caller can say where the partial files are."""
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
    commit_dir(tmp, path, owned)


def commit_dir(tmp, path, owned=()):
    """Move the entries of directory tmp into path (see atomic_dir), then remove tmp."""
    import signal

    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        os.makedirs(path, exist_ok=True)
        made = os.listdir(tmp)
        trash = []
        for name in made + [n for n in owned if n not in made]:
            dst = os.path.join(path, name)
            if os.path.isdir(dst) and not os.path.islink(dst):
                aside = _tmp_name(dst) + ".old"
                os.rename(dst, aside)
                trash.append(aside)
            elif name not in made and os.path.lexists(dst):
                os.unlink(dst)
            if name in made:
                os.replace(os.path.join(tmp, name), dst)
        os.rmdir(tmp)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    for d in trash:
        shutil.rmtree(d, ignore_errors=True)

"""The `--pty-link PATH` symlink that names an emulator's pseudo-terminal (docs/emulators.md).

PATH is a user-chosen name, so the tool must never delete what is there unless it is one of
its own kind: a symlink into /dev/pts/ left by an earlier run (a pty we no longer own, since
ptys are freed when their process exits). A regular file, a directory, a device node such as
/dev/ttyUSB0 (we may run as root) or a link to anything else is refused with a clear error.
The link is removed on every exit, and only if it still points at our pty.
"""
import os

PTS_DIR = "/dev/pts/"


class PtyLinkError(Exception):
    """PATH holds something that is not a pty link; nothing was changed."""


def is_pty_link(path):
    return os.path.islink(path) and os.readlink(path).startswith(PTS_DIR)


def check_link_path(path):
    """Raise PtyLinkError unless `path` is free or a stale pty link (nothing is changed)."""
    if not os.path.lexists(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise PtyLinkError("--pty-link %s: directory %s does not exist" % (path, parent))
        return
    if is_pty_link(path):
        return
    if os.path.islink(path):
        what = "a symlink to %s" % os.readlink(path)
    elif os.path.isdir(path):
        what = "a directory"
    elif os.path.isfile(path):
        what = "a regular file"
    else:
        what = "a device node or special file"
    raise PtyLinkError("--pty-link %s: refusing to replace %s (only a symlink into %s "
                       "left by an earlier run is replaced); choose another path"
                       % (path, what, PTS_DIR))


def place_link(target, path):
    """Make `path` a symlink to the pty `target`, replacing only a stale pty link. Atomic:
    the new link is made under a temporary name and renamed over the old one."""
    check_link_path(path)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    return path


def remove_link(path, target):
    """Remove `path` if it is still our link to `target` (another run may have taken it)."""
    try:
        if os.path.islink(path) and os.readlink(path) == target:
            os.unlink(path)
    except OSError:
        pass

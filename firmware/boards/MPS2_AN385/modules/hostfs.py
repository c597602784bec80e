"""The board's flash region as a VFS: files on the host through ARM semihosting.

Mounted by the board start-up (board_mps2.py) at /flash, rooted at a host directory, so the
agent's FlashStore works unchanged. Each write reaches the host file in one write(2) and a
rename is one rename(2): a SIGKILL of QEMU (the demo's power cut) loses no written byte and
never leaves half a rename, which is what docs/store-and-forward.md assumes of flash.
"""
import smeter_board

_S_IFDIR = 0x4000
_S_IFREG = 0x8000


class HostFS:
    def __init__(self, root):
        self.root = root.rstrip("/")
        self.cwd = "/"

    def _p(self, path):
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        return self.root + path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        return smeter_board.open(self._p(path), mode)

    def stat(self, path):
        n = smeter_board.stat_size(self._p(path))
        if n < 0:
            if path in ("", "/"):
                return (_S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            raise OSError(2)
        return (_S_IFREG, 0, 0, 0, 0, 0, n, 0, 0, 0)

    def remove(self, path):
        smeter_board.remove(self._p(path))

    def rename(self, old, new):
        smeter_board.rename(self._p(old), self._p(new))

    def mkdir(self, path):
        raise OSError(17)  # the launcher creates the host directory; semihosting cannot

    def rmdir(self, path):
        raise OSError(1)

    def chdir(self, path):
        self.cwd = path

    def getcwd(self):
        return self.cwd

    def ilistdir(self, path):
        raise OSError(95)

    def statvfs(self, path):
        return (4096, 4096, 0, 0, 0, 0, 0, 0, 0, 255)

"""MicroPython firmware with the agent frozen, built out of tree and cached by input hash.

Sources: a MicroPython tree and a micropython-lib tree of the same tag (v1.28.0), by default
../shared/vendor/{micropython,micropython-lib} beside the project, else --micropython/--lib or
SMETER_MICROPYTHON / SMETER_MICROPYTHON_LIB. The trees are only read: every object goes to
.cache/firmware/<board>-<hash>/ (BUILD=), mpy-cross to .cache/firmware/mpy-cross-<hash>/.
The hash covers the MicroPython sources, the project files frozen or compiled in, the board
options and the compiler's version, so a second build of the same inputs is a cache hit and
SOURCE_DATE_EPOCH keeps the image byte-identical between builds (docs/flashing.md).
"""
import hashlib
import json
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".cache", "firmware")
BOARDS = ("mps2-an385", "unix")
DEFAULT_HEAP = {"mps2-an385": 49152, "unix": None}  # unix: set at run time (-X heapsize)
# The unix port without the parts whose git submodules a source-only tree lacks.
_UNIX_OPTS = ["VARIANT=standard", "MICROPY_PY_BTREE=0", "MICROPY_PY_FFI=0", "MICROPY_PY_SSL=0",
              "MICROPY_SSL_AXTLS=0", "MICROPY_SSL_MBEDTLS=0"]
_MP_DIRS = ("py", "extmod", "shared", "lib/libm", "lib/uzlib", "lib/re1.5", "mpy-cross", "tools")
_PROJECT_DIRS = ("edge", "firmware")
_SOURCE_DATE_EPOCH = "1767225600"  # 2026-01-01: fixed, so the version banner never changes


class BuildError(Exception):
    """exit 4 (environment): a missing tool or source tree, a compile that failed."""

    def __init__(self, message, exit_code=4):
        Exception.__init__(self, message)
        self.exit_code = exit_code


def source_trees(micropython=None, lib=None):
    """(micropython dir, micropython-lib dir): option, environment, then the vendored copy."""
    vendor = os.path.join(os.path.dirname(ROOT), "shared", "vendor")
    mp = micropython or os.environ.get("SMETER_MICROPYTHON") or os.path.join(vendor, "micropython")
    ml = lib or os.environ.get("SMETER_MICROPYTHON_LIB") or os.path.join(vendor, "micropython-lib")
    if not os.path.isfile(os.path.join(mp, "py", "mpconfig.h")):
        raise BuildError("no MicroPython source tree at %s (git clone --depth 1 -b v1.28.0 "
                         "https://github.com/micropython/micropython; then --micropython DIR)" % mp)
    if not os.path.isdir(os.path.join(ml, "micropython")):
        raise BuildError("no micropython-lib tree at %s (git clone --depth 1 -b v1.28.0 "
                         "https://github.com/micropython/micropython-lib; then --lib DIR)" % ml)
    return os.path.abspath(mp), os.path.abspath(ml)


def board_dir(board):
    return os.path.join(ROOT, "firmware", "boards", "MPS2_AN385" if board == "mps2-an385" else "unix")


def tools_for(board):
    return ["make", "arm-none-eabi-gcc", "arm-none-eabi-size"] if board == "mps2-an385" \
        else ["make", "gcc", "size"]


def missing_tools(board):
    return [t for t in tools_for(board) if shutil.which(t) is None]


def _hash_tree(h, top, rel_dirs, exts=None):
    for rel in rel_dirs:
        base = os.path.join(top, rel)
        for dirpath, dirnames, files in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in ("build", "__pycache__") and
                                 not d.startswith("build-"))
            for name in sorted(files):
                if exts and not name.endswith(exts):
                    continue
                p = os.path.join(dirpath, name)
                h.update(os.path.relpath(p, top).encode() + b"\0")
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())


def _tool_version(cmd):
    try:
        return subprocess.run([cmd, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        return "missing"


def input_hash(board, mp, ml, heap, python=True):
    """SHA-256 of everything the image is made of; python=False leaves out the frozen .py
    files (the key of the reusable object folder: only C and build settings)."""
    h = hashlib.sha256()
    h.update(json.dumps([board, heap, _UNIX_OPTS, _SOURCE_DATE_EPOCH]).encode())
    h.update(_tool_version(tools_for(board)[1]).encode())
    port = "ports/qemu" if board == "mps2-an385" else "ports/unix"
    _hash_tree(h, mp, _MP_DIRS + (port,))
    _hash_tree(h, ROOT, _PROJECT_DIRS, exts=((".py",) if python else ()) + (".c", ".h", ".mk"))
    return h.hexdigest()


def _mpy_cross(mp, log):
    h = hashlib.sha256()
    _hash_tree(h, mp, ("py", "mpy-cross", "shared"))
    out = os.path.join(CACHE, "mpy-cross-" + h.hexdigest()[:16])
    exe = os.path.join(out, "mpy-cross")
    if not os.path.exists(exe):
        _make(["make", "-C", os.path.join(mp, "mpy-cross"), "BUILD=" + out, "-j2"], log, "mpy-cross")
    return exe


def _make(argv, log, what):
    env = dict(os.environ, SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH)
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(argv) + "\n").encode())
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        raise BuildError("building %s failed (make exit %d); log: %s" % (what, r.returncode, log))


def sizes(elf, size_tool):
    out = subprocess.run([size_tool, elf], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(x) for x in out.split("\n")[1].split()[:3])
    return text, data, bss


def frozen_size(build):
    """Bytes of frozen bytecode: the .mpy files the manifest compiled, summed."""
    total = 0
    for dirpath, _, files in os.walk(os.path.join(build, "frozen_mpy")):
        total += sum(os.path.getsize(os.path.join(dirpath, n)) for n in files if n.endswith(".mpy"))
    return total


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def build(board, micropython=None, lib=None, heap=None, out=None, progress=None):
    """Build (or find in the cache) the firmware of `board`; returns the report dict. One
    build at a time per project (a lock file): parallel test workers wait for the first."""
    import fcntl

    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(board, micropython, lib, heap, out, progress)


def _build(board, micropython, lib, heap, out, progress):
    if board not in BOARDS:
        raise BuildError("unknown board %r (one of %s)" % (board, ", ".join(BOARDS)), 2)
    heap = heap or DEFAULT_HEAP[board]
    if board == "unix" and heap:
        raise BuildError("the unix port's heap is set at run time (micropython -X heapsize=SIZE)", 2)
    miss = missing_tools(board)
    if miss:
        pk = "gcc-arm-none-eabi libnewlib-arm-none-eabi" if board == "mps2-an385" else "build-essential"
        raise BuildError("missing %s (bash scripts/install-debian-deps.sh installs %s)" % (
            ", ".join(miss), pk))
    mp, ml = source_trees(micropython, lib)
    key = input_hash(board, mp, ml, heap)
    build_dir = os.path.abspath(out) if out else os.path.join(CACHE, "%s-%s" % (board, key[:16]))
    stamp = os.path.join(build_dir, "smeter-build.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            rep = json.load(f)
        if rep.get("input_hash") == key:
            rep["cached"] = True
            return rep
    os.makedirs(build_dir, exist_ok=True)
    log = os.path.join(build_dir, "build.log")
    if os.path.exists(log):
        os.remove(log)
    # Objects: --out DIR itself, else a folder keyed by everything but the frozen Python, so a
    # change to the agent's code rebuilds only the frozen modules (seconds, not a minute);
    # the image and its report are then copied into the input-hash folder.
    objs = build_dir if out else os.path.join(CACHE, "%s-objects-%s" % (
        board, input_hash(board, mp, ml, heap, python=False)[:16]))
    if progress:
        progress("building mpy-cross and the %s firmware in %s (a minute the first time)"
                 % (board, objs))
    cross = _mpy_cross(mp, log)
    bd = board_dir(board)
    common = ["BUILD=" + objs, "MICROPY_MPYCROSS=" + cross,
              "FROZEN_MANIFEST=" + os.path.join(bd, "manifest.py"), "MPY_LIB_DIR=" + ml, "-j2"]
    if board == "mps2-an385":
        argv = ["make", "-C", os.path.join(mp, "ports", "qemu"), "BOARD_DIR=" + bd,
                "USER_C_MODULES=" + os.path.join(bd, "cmodules"), "MICROPY_HEAP_SIZE=%d" % heap]
        # the port's Makefile reads BOARD only for its build folder and default manifest
        elf_name = "firmware.elf"
        size_tool = "arm-none-eabi-size"
    else:
        argv = ["make", "-C", os.path.join(mp, "ports", "unix")] + _UNIX_OPTS
        elf_name = "micropython"
        size_tool = "size"
    # a module dropped from the manifest must not linger in frozen_mpy/ (nor in frozen_size)
    shutil.rmtree(os.path.join(objs, "frozen_mpy"), ignore_errors=True)
    _make(argv + common, log, board + " firmware")
    elf = os.path.join(build_dir, elf_name)
    if objs != build_dir:
        shutil.copy2(os.path.join(objs, elf_name), elf)
    if board == "mps2-an385":
        image = os.path.join(build_dir, "firmware.bin")
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", elf, image], check=True)
    else:
        image = elf
    text, data, bss = sizes(elf, size_tool)
    rep = {"board": board, "firmware": elf, "image": image, "sha256": sha256_file(image),
           "text": text, "data": data, "bss": bss, "frozen_bytes": frozen_size(objs),
           "heap_size": heap, "input_hash": key, "micropython": mp, "micropython_lib": ml}
    tmp = stamp + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rep, f, indent=1)
    os.replace(tmp, stamp)
    rep["cached"] = False
    return rep

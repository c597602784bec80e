"""The collector's asyncio UDP server: drain the socket, run one batch, commit, then ack.

asyncio's datagram transport reads one datagram per loop turn; this server instead reads
every datagram the socket holds (up to `max_batch`) when it becomes readable, so a burst
is verified and committed in one transaction and only then acknowledged.

With `workers` > 1 the pipeline runs in that many forked worker processes, each with its
own SQLite connection (WAL lets them take turns writing): the server only reads datagrams
and routes each one by its device id, so all frames of a device meet the same replay
window, in arrival order. Workers send their acks from the inherited socket.
"""
import asyncio
import collections
import multiprocessing
import os
import select
import signal
import socket
import sys
import threading
import time

from host_tools.collector import wire

try:  # recvmmsg/sendmmsg (setup.py, Linux); one system call per datagram without it
    from host_tools.collector import _batchio
except ImportError:
    _batchio = None
if _batchio is not None and not hasattr(_batchio, "Receiver"):
    _batchio = None  # built from older sources: `pip install -e .` rebuilds it

DEFAULT_MAX_BATCH = 4096
# Every datagram is read whole (the largest UDP payload fits), so a rejection row's raw_len
# is the datagram's true length even far beyond wire.MAX_FRAME.
RECV_SIZE = 65536
# Requested socket receive buffer: absorbs ~30,000 small datagrams (each costs ~1 KB of
# kernel memory) while a batch is verified and committed. Linux caps SO_RCVBUF at
# net.core.rmem_max unless the process may use SO_RCVBUFFORCE (CAP_NET_ADMIN, e.g. root).
DEFAULT_RECV_BUFFER = 32 << 20


def set_recv_buffer(sock, size):
    """Ask for a receive buffer of `size` bytes; returns what the kernel granted (Linux
    reports twice the usable size, its bookkeeping included)."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    done = False
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            done = True
        except OSError:  # not permitted: the plain option, capped by net.core.rmem_max
            pass
    if not done:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:
            pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def kernel_drops(sock):
    """Datagrams the kernel dropped for this socket since it was created (receive buffer
    full), or None where the platform does not say. Linux: the `drops` column of
    /proc/net/udp (or udp6) on the socket's inode line."""
    try:
        ino = str(os.fstat(sock.fileno()).st_ino)
        for name in ("/proc/net/udp", "/proc/net/udp6"):
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) >= 13 and parts[9] == ino:
                        return int(parts[12])
    except (OSError, ValueError, StopIteration):
        return None
    return None


def route(data, n):
    """Worker index for a datagram: by the device id wire.peek_device_id reads from its first
    bytes, else 0. Never decodes: every acceptable frame has that layout, the rest only needs
    a worker to reject it (decoding here cost the server hostile CBOR's price a second time)."""
    dev = wire.peek_device_id(data)
    return 0 if dev is None else dev % n


def _send_acks(sock, replies, log):
    if _batchio is not None:
        failed = _batchio.send_batch(sock.fileno(), replies)
        if not failed:
            return
        retry = []
        for i, err in failed:
            if err:
                log("collect: ack to %s failed: %s" % (replies[i][0], os.strerror(err)))
            else:  # an address _batchio does not convert: the socket module does
                retry.append(replies[i])
        replies = retry
    for addr, ack in replies:
        try:
            sock.sendto(ack, addr)
        except OSError as e:
            log("collect: ack to %s failed: %s" % (addr, e))


def recv_all(sock, max_n, buf):
    """Every datagram waiting on the non-blocking sock, at most max_n, each read whole:
    [(bytes, addr)]. buf: a bytearray of RECV_SIZE for the one-by-one fallback."""
    if _batchio is not None:
        return _batchio.recv_batch(sock.fileno(), max_n)
    batch = []
    recv = sock.recvfrom_into
    mv = memoryview(buf)
    try:
        while len(batch) < max_n:
            n, addr = recv(buf)
            batch.append((mv[:n].tobytes(), addr))
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:  # e.g. an ICMP error about an earlier ack: keep what was read
        if not batch:
            raise
    return batch


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid):
    """Make this (forked) worker die when the server process dies, however it dies (SIGKILL
    included), so no orphan keeps the UDP socket and a restart can bind the port at once.
    Linux: prctl(PR_SET_PDEATHSIG, SIGKILL). Everywhere: the worker reads its pipe, whose
    other end only the server holds (_worker_main closes the copies it inherited), so the
    server's death is an EOF there. Returns False if the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the pipe's EOF still ends the worker
    return os.getppid() == parent_pid  # the parent may have died before prctl


def _worker_main(conn, sock, make_ingest, keyfile, index, parent_pid=None, inherited=()):
    """One worker process: batches in over the pipe, per-batch counters back.

    inherited: the server's ends of the pipes (this worker's and earlier workers') that the
    fork copied here; they are closed so that only the server keeps them open."""
    for c in inherited:
        c.close()
    if parent_pid is not None and not _die_with_parent(parent_pid):
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ing = make_ingest()
    prefix = "collect[%d]: " % index
    ing.log = lambda m: _log(prefix + m)
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break
            if msg is None:
                break
            if msg == "tick":
                ing.log_budget = 50
                continue
            if keyfile is not None:  # before every batch, and on "keys" from the server
                r = keyfile.maybe_reload()
                if r is True:
                    _log(prefix + "keys reloaded (%d keys)" % len(keyfile.keyring))
                elif r is not None:
                    _log(prefix + "keys file not reloaded, keeping the previous keys: %s" % r)
            if msg == "keys":
                continue
            # Coalesce: everything the server routed here meanwhile joins this batch (one
            # transaction), so batches grow with load as they do without workers.
            stop = False
            while len(msg) < DEFAULT_MAX_BATCH and conn.poll():
                more = conn.recv()
                if more is None:
                    stop = True
                    break
                if type(more) is list:
                    msg = msg + more
                elif more == "tick":
                    ing.log_budget = 50
                else:
                    keyfile is not None and keyfile.maybe_reload()
            before = collections.Counter(ing.stats)
            try:
                replies = ing.process(msg)
            except Exception as e:  # the store failed: nothing acked, devices resend
                _log(prefix + "batch of %d not stored (%s: %s)" % (len(msg), type(e).__name__, e))
                conn.send({"store_errors": 1})
                continue
            _send_acks(sock, replies, _log)
            delta = collections.Counter(ing.stats)
            delta.subtract(before)
            conn.send({k: v for k, v in delta.items() if v})
            if stop:
                break
    finally:
        ing.store.close()
        conn.close()


# Datagrams the drain thread may hold for the server (~100 bytes each): a burst of this many
# beyond what the server can verify at once waits in memory instead of in the kernel buffer.
DRAIN_LIMIT = 250000
_DRAIN_PAUSE_S = 0.0005  # after each drain: lets datagrams gather (fewer wake-ups, GIL handoffs)


class Drain(threading.Thread):
    """Moves datagrams from the socket's kernel buffer into `queue` all the time, also while
    the server verifies and commits a batch (SQLite releases the GIL; the thread then runs on
    another core). The kernel buffer (net.core.rmem_max, 8 MiB here: ~10,000 small datagrams)
    thus has to absorb only a few milliseconds of traffic, not a whole batch's commit; the
    server takes its batches from the queue. `notify` (a pipe's write end) gets one byte when
    the queue turns non-empty.

    This Python thread is the fallback of _batchio.Receiver (start_receiver), which does the
    same on a thread that never takes the GIL."""

    def __init__(self, sock, notify, log, limit=DRAIN_LIMIT):
        threading.Thread.__init__(self, name="collect-drain", daemon=True)
        self.sock = sock
        self.queue = collections.deque()
        self.notify = notify
        self.log = log
        self.limit = limit
        self.signalled = False
        self._stop_r, self._stop_w = os.pipe()

    def run(self):
        fd = self.sock.fileno()
        buf = bytearray(RECV_SIZE)
        q = self.queue
        poller = select.poll()  # not select(): it fails on descriptors above 1023
        poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            if any(f == self._stop_r for f, ev in poller.poll()):
                return
            while len(q) < self.limit:
                try:
                    batch = recv_all(self.sock, 4096, buf)
                except OSError as e:  # e.g. an ICMP error about an earlier ack
                    self.log("collect: recv error %s" % e)
                    break
                if not batch:
                    break
                q.extend(batch)
                if not self.signalled:
                    self.signalled = True
                    os.write(self.notify, b"\0")
            time.sleep(_DRAIN_PAUSE_S)

    def __len__(self):
        return len(self.queue)

    def take(self, n):
        """Up to n queued datagrams, oldest first (the server's loop)."""
        self.signalled = False
        q = self.queue
        return [q.popleft() for _ in range(min(n, len(q)))]

    def stop(self):
        os.write(self._stop_w, b"\0")
        self.join()
        os.close(self._stop_r)
        os.close(self._stop_w)


def start_receiver(sock, notify, log, limit=DRAIN_LIMIT):
    """The thread moving datagrams from the kernel buffer to a queue (started): `len(r)`
    queued, `r.take(n)` the oldest n as [(bytes, addr)], `r.stop()`. _batchio.Receiver (C,
    never takes the GIL, so its reads go on while the server verifies and commits) when
    built, else Drain."""
    if _batchio is not None:
        return _batchio.Receiver(sock.fileno(), notify, limit)
    d = Drain(sock, notify, log, limit)
    d.start()
    return d


class CollectorServer:
    """ingest: an Ingest (workers == 1) or a callable building one inside each worker."""

    def __init__(self, ingest, host, port, keyfile=None, stats_interval=60.0,
                 max_batch=DEFAULT_MAX_BATCH, err=None, workers=1,
                 recv_buffer=DEFAULT_RECV_BUFFER):
        self.ingest = ingest
        self.keyfile = keyfile
        self.stats_interval = stats_interval
        self.max_batch = max_batch
        self.err = err or sys.stderr
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.recv_buffer = set_recv_buffer(self.sock, recv_buffer)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self._buf = bytearray(RECV_SIZE)
        self._drain = None
        self._stop = None
        self.failed = False  # a worker died; the command exits non-zero
        self.workers = []
        self.nworkers = workers
        self.stats = collections.Counter()  # workers > 1: sums of the workers' counters

    def log(self, msg):
        print(msg, file=self.err, flush=True)

    # ------------------------------------------------------------------ workers

    def _start_workers(self):
        ctx = multiprocessing.get_context("fork")
        me = os.getpid()
        for i in range(self.nworkers):
            parent, child = ctx.Pipe()
            inherited = [c for _, c in self.workers] + [parent]
            p = ctx.Process(target=_worker_main, args=(child, self.sock, self.ingest,
                                                       self.keyfile, i, me, inherited),
                            daemon=True)
            p.start()
            child.close()
            self.workers.append((p, parent))

    def _on_worker(self, conn):
        try:
            while conn.poll():
                self.stats.update(conn.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            if not self._stop.is_set():
                self.log("collect: a worker exited unexpectedly; stopping")
                self.failed = True
                self._stop.set()

    def _stop_workers(self):
        for p, conn in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
        for p, conn in self.workers:
            try:
                while True:
                    self.stats.update(conn.recv())
            except (EOFError, OSError):
                pass
            p.join(30)

    # ------------------------------------------------------------------ datagrams

    def _on_queued(self):
        """The drain thread queued datagrams: one batch of them, and again soon if more."""
        try:
            os.read(self._notify_r, 4096)
        except BlockingIOError:
            pass
        batch = self._drain.take(self.max_batch)
        if batch:
            self._dispatch(batch)
        if len(self._drain) and not self._stop.is_set():
            asyncio.get_running_loop().call_soon(self._on_queued)

    def _drain_rest(self):
        """At the stop: what the drain thread queued, then what the socket still holds."""
        batch = self._drain.take(len(self._drain)) if self._drain is not None else []
        try:
            batch += recv_all(self.sock, 1 << 30, self._buf)
        except OSError as e:
            self.log("collect: recv error %s" % e)
        for i in range(0, len(batch), self.max_batch):
            self._dispatch(batch[i : i + self.max_batch])

    def _dispatch(self, batch):
        if not self.workers:
            self._run_batch(batch)
            return
        n = len(self.workers)
        parts = [[] for _ in range(n)]
        for item in batch:
            parts[route(item[0], n)].append(item)
        for i, ((p, conn), part) in enumerate(zip(self.workers, parts)):
            if part:
                try:
                    conn.send(part)
                except OSError as e:  # the worker died: stop rather than drop frames silently
                    self.log("collect: worker %d gone (%s); stopping" % (i, e))
                    self.failed = True
                    self._stop.set()

    def _run_batch(self, batch):
        try:
            replies = self.ingest.process(batch)
        except Exception as e:  # the store failed: nothing was acked, devices will resend
            self.stats["store_errors"] += 1
            self.log("collect: batch of %d not stored (%s: %s)" % (len(batch), type(e).__name__, e))
            return
        _send_acks(self.sock, replies, self.log)

    def stats_line(self, prefix="collect"):
        if self.workers:
            from host_tools.collector.ingest import format_stats

            line = format_stats(self.stats, prefix)
        else:
            line = self.ingest.stats_line(prefix)
        errors = getattr(self._drain, "recv_errors", 0)  # the C receiver counts, Drain logs
        if errors:
            line += " recv_errors=%d" % errors
        drops = kernel_drops(self.sock)
        if drops is not None:  # counted by the kernel, not stored: it never saw their bytes
            line += " kernel_drops=%d" % drops
        return line

    def _tick(self):
        loop = asyncio.get_running_loop()
        self.log(self.stats_line())
        if self.workers:
            for p, conn in self.workers:
                conn.send("tick")
        else:
            self.ingest.log_budget = 50
        self._tick_handle = loop.call_later(self.stats_interval, self._tick)

    def _maybe_reload_keys(self):
        if self.keyfile is None:
            return
        r = self.keyfile.maybe_reload()
        if r is True:
            self.log("collect: keys reloaded (%d keys)" % len(self.keyfile.keyring))
            for p, conn in self.workers:
                conn.send("keys")
        elif r is not None:
            self.log("collect: keys file not reloaded, keeping the previous keys: %s" % r)

    def _poll_keys(self):
        self._maybe_reload_keys()
        self._key_poll = asyncio.get_running_loop().call_later(1.0, self._poll_keys)

    async def serve(self, ready=None):
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.nworkers > 1:
            self._start_workers()
            for p, conn in self.workers:
                loop.add_reader(conn.fileno(), self._on_worker, conn)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._maybe_reload_keys)
        # Rotation without a signal: the keys file's mtime is checked every second.
        self._key_poll = loop.call_later(1.0, self._poll_keys)
        # the drain thread starts after the workers forked (a fork copies no running thread)
        self._notify_r, notify_w = os.pipe()
        os.set_blocking(self._notify_r, False)
        self._drain = start_receiver(self.sock, notify_w, self.log)
        loop.add_reader(self._notify_r, self._on_queued)
        self._tick_handle = loop.call_later(self.stats_interval, self._tick)
        if ready is not None:
            ready(self.address)
        try:
            await self._stop.wait()
        finally:
            loop.remove_reader(self._notify_r)
            self._drain.stop()
            os.close(self._notify_r)
            os.close(notify_w)
            self._tick_handle.cancel()
            self._key_poll.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            # Datagrams that arrived before the signal are still stored and acked.
            if not self.failed:
                self._drain_rest()
            if self.workers:
                for p, conn in self.workers:
                    loop.remove_reader(conn.fileno())
                self._stop_workers()
            self.log(self.stats_line("collect: final"))
            self.sock.close()

    def stop(self):
        if self._stop is not None:
            self._stop.set()


def worker_count(text):
    """--workers value: a positive int or 'auto' (one per CPU, at most 4)."""
    if text == "auto":
        return max(1, min(4, os.cpu_count() or 1))
    n = int(text)
    if n < 1:
        raise ValueError("--workers must be >= 1")
    return n

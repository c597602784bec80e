"""The collector's asyncio UDP server: drain the socket, run one batch, commit, then ack.

asyncio's datagram transport reads one datagram per loop turn; this server instead reads
every datagram the socket holds (up to `max_batch`) when it becomes readable, so a burst
is verified and committed in one transaction and only then acknowledged.
"""
import asyncio
import signal
import socket
import sys

DEFAULT_MAX_BATCH = 4096
RECV_SIZE = 4096  # a datagram longer than wire.MAX_FRAME is still read whole to reject it


class CollectorServer:
    def __init__(self, ingest, host, port, keyfile=None, stats_interval=60.0,
                 max_batch=DEFAULT_MAX_BATCH, err=None):
        self.ingest = ingest
        self.keyfile = keyfile
        self.stats_interval = stats_interval
        self.max_batch = max_batch
        self.err = err or sys.stderr
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self._stop = None
        self.store_errors = 0

    def log(self, msg):
        print(msg, file=self.err, flush=True)

    def _on_readable(self):
        batch = []
        recv = self.sock.recvfrom
        try:
            while len(batch) < self.max_batch:
                batch.append(recv(RECV_SIZE))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:  # e.g. ICMP port unreachable reported on a later recv
            self.log("collect: recv error %s" % e)
        if batch:
            self._run_batch(batch)

    def _run_batch(self, batch):
        try:
            replies = self.ingest.process(batch)
        except Exception as e:  # the store failed: nothing was acked, devices will resend
            self.store_errors += 1
            self.log("collect: batch of %d not stored (%s: %s)" % (len(batch), type(e).__name__, e))
            return
        send = self.sock.sendto
        for addr, ack in replies:
            try:
                send(ack, addr)
            except OSError as e:
                self.log("collect: ack to %s failed: %s" % (addr, e))

    def _tick(self):
        loop = asyncio.get_running_loop()
        self.log(self.ingest.stats_line())
        self.ingest.log_budget = 50
        self._maybe_reload_keys()
        self._tick_handle = loop.call_later(self.stats_interval, self._tick)

    def _maybe_reload_keys(self):
        if self.keyfile is None:
            return
        r = self.keyfile.maybe_reload()
        if r is True:
            self.log("collect: keys reloaded (%d keys)" % len(self.keyfile.keyring))
        elif r is not None:
            self.log("collect: keys file not reloaded, keeping the previous keys: %s" % r)

    async def serve(self, ready=None):
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        if self.keyfile is not None:
            loop.add_signal_handler(signal.SIGHUP, self._maybe_reload_keys)
            # Rotation without a signal: check the keys file's mtime every second.
            self._key_poll = loop.call_later(1.0, self._poll_keys)
        loop.add_reader(self.sock.fileno(), self._on_readable)
        self._tick_handle = loop.call_later(self.stats_interval, self._tick)
        if ready is not None:
            ready(self.address)
        try:
            await self._stop.wait()
        finally:
            loop.remove_reader(self.sock.fileno())
            self._tick_handle.cancel()
            if self.keyfile is not None:
                self._key_poll.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            # Datagrams that arrived before the signal are still stored and acked.
            self._on_readable()
            self.sock.close()
            self.log(self.ingest.stats_line("collect: final"))

    def _poll_keys(self):
        self._maybe_reload_keys()
        self._key_poll = asyncio.get_running_loop().call_later(1.0, self._poll_keys)

    def stop(self):
        if self._stop is not None:
            self._stop.set()

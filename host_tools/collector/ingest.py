"""The collector's pipeline for one batch of datagrams: verify, deduplicate, store, ack.

Batching is the design: the server hands over every datagram it could read at once, and
the whole batch is committed in one SQLite transaction before any ack is sent, so an ack
always means "stored" (one transaction per frame would cap throughput at the per-commit
cost). Decisions per datagram, in order (reasons are stable counter names):

  parse (wire.py)        oversized, too_short, malformed_cbor, non_canonical, bad_schema,
                         bad_tag_length, unsupported_version, unsupported_algorithm
  anything unexpected    internal_error: an exception while deciding one datagram (before
                         anything of it is written) rejects that datagram, not its batch
  key (keys.py)          unknown_key, key_not_valid
  MAC (wire.py)          bad_mac
  sequence window        a seq seen before (or below the window) whose bytes equal the stored
                         frame is a retransmission: re-acked, counted duplicate_frames, nothing
                         stored; otherwise `replay` / `seq_below_window`, refused, not acked
  slot window            a record whose slot ends later than now + future tolerance:
                         `slot_in_future`, the whole frame refused and not acked
  seal frame             a daily seal (docs/seals.md) rides in an authenticated frame of its
                         own (same key, MAC, seq window and ack): it is stored in `seals`
                         with the verdict of checking it against the stored values and the
                         public-key registry (verified / failed / unchecked without one);
                         an unparseable seal is logged as `seal_malformed`, the frame acked
  accepted               records older than the backfill window are not stored
                         (`slot_too_old`, logged) but the frame is acked so the device can
                         drain its queue; a (device, slot) already stored is not overwritten:
                         same values -> duplicate_slots, different -> `slot_conflict` (logged)

A refused frame never touches slot_values or frames; it is logged in `rejections` with its
raw bytes truncated to `max_raw`.
"""
import collections
import gc
import sqlite3
import time

from edge import seal as edge_seal
from edge.timebase import EDGE_EPOCH_UNIX, SLOT_SECONDS
from host_tools.collector import replay_guard, wire
from host_tools.collector.store import (FRAME_COLUMNS, VALUE_COLUMNS, frame_row, s64, u64,
                                        value_row)

_EPOCH = EDGE_EPOCH_UNIX
_TIME_REQUEST = wire.ST_TIME_REQUEST
_SLOT = SLOT_SECONDS
_TWO63 = 1 << 63
_TWO64 = 1 << 64
_FRESH = replay_guard.FRESH

try:  # the optional C loop of the fast path (setup.py); Python's own loop otherwise
    from host_tools.collector import _fastpath
except ImportError:
    _fastpath = None
if _fastpath is not None and not hasattr(_fastpath, "FastPath"):
    _fastpath = None  # built from older sources: `pip install -e .` rebuilds it
# wire.TAG_LEN by algorithm number 0..7, as a tuple for _fastpath
_TAG_LEN8 = tuple(wire.TAG_LEN.get(a) for a in range(8))
# positions in a slot_values row (store.VALUE_COLUMNS)
_V = {c: i for i, c in enumerate(VALUE_COLUMNS)}

R_REPLAY = "replay"
R_SEQ_BELOW_WINDOW = "seq_below_window"
R_SLOT_IN_FUTURE = "slot_in_future"
R_SLOT_TOO_OLD = "slot_too_old"
R_SLOT_CONFLICT = "slot_conflict"
R_INTERNAL = "internal_error"  # an unexpected exception while deciding one datagram
R_SEAL_MALFORMED = "seal_malformed"

# Every rejection reason the collector can count (docs/collector.md lists them).
REASONS = (
    wire.R_OVERSIZED, wire.R_TOO_SHORT, wire.R_MALFORMED_CBOR, wire.R_NON_CANONICAL,
    wire.R_BAD_SCHEMA, wire.R_BAD_TAG_LENGTH, wire.R_UNSUPPORTED_VERSION,
    wire.R_UNSUPPORTED_ALGORITHM, "unknown_key", "key_not_valid", wire.R_BAD_MAC,
    R_REPLAY, R_SEQ_BELOW_WINDOW, R_SLOT_IN_FUTURE, R_INTERNAL,
)


class Policy:
    """Collector settings. Defaults are engineering choices, not regulatory numbers."""

    def __init__(self, window=replay_guard.DEFAULT_SIZE, future_tolerance_s=300,
                 backfill_s=35 * 86400, max_raw=512, ack_max_seqs=32):
        self.window = window
        # A slot may close at most this far after the collector's clock (device clock skew).
        self.future_tolerance_s = future_tolerance_s
        # Slots ending longer ago than this are not stored. 35 days exceeds the device
        # queue (>= 7 days, docs/store-and-forward.md) by a wide margin and ends before a
        # month is confirmed.
        self.backfill_s = backfill_s
        self.max_raw = max_raw
        self.ack_max_seqs = ack_max_seqs


def _peer(addr):
    if addr is None:
        return None
    try:
        return "%s:%d" % (addr[0], addr[1])
    except (TypeError, IndexError):
        return str(addr)


class Batch:
    """One batch's decisions: filled by Ingest.verify (and _general), whose rows
    Ingest.store_batch writes before it releases `replies`, the acks to send.

    The C loop (_fastpath.FastPath.accept_run) reads these attributes by name: now (s),
    now_ms, latest_end (s), oldest_end_ms, frames and values (row lists in store.FRAME_COLUMNS
    / VALUE_COLUMNS order), pending, acks, peers."""

    __slots__ = ("keyring", "now", "now_ms", "latest_end", "oldest_end_ms", "counts",
                 "frames", "values", "rejections", "pending", "acks", "peers", "received",
                 "accepted", "dup_frames", "replies", "seals", "timed")

    def __init__(self, ingest, now):
        pol = ingest.policy
        self.keyring = ingest.keyring()
        self.now = now
        self.now_ms = int(now * 1000)
        self.latest_end = now + pol.future_tolerance_s
        self.oldest_end_ms = int((now - pol.backfill_s) * 1000)
        self.counts = collections.Counter()
        self.frames = []
        self.values = []
        self.rejections = []
        self.pending = {}  # {(device, seq): raw} accepted in this batch
        self.acks = {}  # {(addr, device, kid): (MacKey, seq or [seqs])}
        self.peers = {}
        self.received = self.accepted = self.dup_frames = 0
        self.replies = []  # [(addr, ack bytes)], computed by verify, sent after the commit
        self.seals = []  # [(device, seq, seal bytes, frame bytes, addr)] of accepted seal frames
        # [(addr, device, kid, MacKey, seq)]: frames asking for the time (-1 - seq: refused)
        self.timed = []

    def edge_time(self):
        """The batch's time as (edge seconds, ms) for acks that carry it: taken after every
        datagram of the batch arrived and before any ack leaves (docs/frames.md)."""
        return divmod(self.now_ms - _EPOCH * 1000, 1000)


def _add_ack(acks, addr, dev, kid, mac, seq):
    """One ack per (peer, device, kid) and batch: (mac, seq), then (mac, [seqs])."""
    key = (addr, dev, kid)
    a = acks.get(key)
    if a is None:
        acks[key] = (mac, seq)
    elif type(a[1]) is list:
        a[1].append(seq)
    else:
        acks[key] = (a[0], [a[1], seq])


class Ingest:
    """Owns the replay windows and counters; `keyring` is a callable returning a Keyring."""

    def __init__(self, store, keyring, policy=None, now=time.time, log=None, pubkeys=None):
        self.store = store
        self.keyring = keyring
        # callable returning the public-key registry (host_tools/seal/pubkeys.py) or None:
        # seals are then stored unchecked
        self.pubkeys = pubkeys
        self.policy = policy or Policy()
        self.now = now
        self.log = log
        self.log_budget = 50  # rejection log lines until the server refills it
        self.windows = {}
        self.stats = collections.Counter()
        # The steady-state fast path of verify(): its loop in "c" (when _fastpath is built)
        # or in "python"; None turns it off. Tests compare all three (same decisions).
        self.fast_path = "c" if _fastpath is not None else "python"
        if _fastpath is not None:
            self._c = _fastpath.FastPath(frame_columns=FRAME_COLUMNS, value_columns=VALUE_COLUMNS,
                                         tag_len=_TAG_LEN8, epoch=_EPOCH, slot_seconds=_SLOT,
                                         peer_of=_peer)
        self._key_table = (None, None)  # (keyring, its _fastpath.KeyTable)

    def _keys_c(self, keyring):
        """The C loop's table of this keyring's keys (rebuilt when the keyring changes): per
        key its public fields (keys.KeyEntry) and its acks' prefix (wire.ack_prefix)."""
        kr, table = self._key_table
        if kr is not keyring:
            table = _fastpath.KeyTable([
                (e.device_id, e.kid, e.key, e.not_before, e.not_after, e.mac,
                 wire.ack_prefix(e.device_id, e.kid))
                for e in keyring.by_id.values()])
            self._key_table = (keyring, table)
        return table

    def _window(self, dev):
        """The device's window, rebuilt from its newest accepted seqs in the frames table
        (which holds exactly the accepted frames, so no separate state is written)."""
        w = replay_guard.ReplayWindow(self.policy.window)
        for seq in sorted(self.store.newest_seqs(dev, self.policy.window)):
            if w.check(seq) == _FRESH:
                w.mark(seq)
        self.windows[dev] = w
        return w

    def process(self, datagrams, now=None):
        """datagrams: iterable of (bytes, addr). Returns [(addr, ack_bytes)] to send.

        Raises only if the store fails or a datagram is not (bytes-like, hashable address);
        nothing of the batch is then stored or acked, and the replay windows are reloaded
        from the store. Every bad frame is a counted rejection, not an exception.
        """
        # No cyclic garbage collection during a batch: it makes a few container objects per
        # frame (rows, keys), all freed by reference counting when the batch is done, and
        # the collector's passes over them were a measurable share of a batch's CPU
        # (docs/collector.md, Throughput).
        gc_on = gc.isenabled()
        gc.disable()
        try:
            return self.store_batch(self.verify(datagrams, now))
        finally:
            if gc_on:
                gc.enable()

    def verify(self, datagrams, now=None):
        """Every decision on a batch and its acks, without writing: a Batch for
        store_batch, which must follow before the next verify (the replay windows already
        count this batch's frames)."""
        if now is None:
            now = self.now()
        b = Batch(self, now)
        frames = b.frames
        values = b.values
        pending = b.pending
        acks = b.acks
        peers = b.peers
        windows = self.windows
        now_ms = b.now_ms
        latest_end = b.latest_end
        oldest_end_ms = b.oldest_end_ms
        general = self._general
        accepted = 0
        # Fast path: the steady state, a one-record frame in the short layout under a known
        # key valid now, a correct MAC, a seq above the device's window top and a slot
        # inside both slot windows. It is accepted in the fewest steps; anything else
        # (including a frame failing any of these checks) takes the general path
        # (_general), which decides again from scratch and names the reason. The C module
        # _fastpath runs the same loop when it is built (setup.py); without it the Python
        # loop below does. tests/host/test_collector_fast_path checks that all three give
        # the same acks, counters and rows.
        mode = self.fast_path
        try:
            if mode is None:
                for data, addr in datagrams:
                    b.received += 1
                    general(b, data, addr)
            elif mode == "c":
                dl = datagrams if type(datagrams) is list else list(datagrams)
                n = len(dl)
                b.received += n
                keys_c = self._keys_c(b.keyring)
                run = self._c.accept_run
                i = 0
                while i < n:
                    i, k = run(b, dl, i, keys_c, windows)
                    accepted += k
                    if i < n:
                        data, addr = dl[i]
                        general(b, data, addr)
                        i += 1
            else:
                match = wire.short_match
                layouts = wire.layouts
                by_id = b.keyring.by_id
                tag_len = wire.TAG_LEN
                for data, addr in datagrams:
                    b.received += 1
                    if type(data) is not bytes:
                        data = bytes(data)
                    m = match(data)
                    if m is None:
                        general(b, data, addr)
                        continue
                    regs = m.regs
                    kid, dev, seq, status, slot, imp, exp, flags = \
                        layouts(regs).unpack_from(data)
                    body_len = regs[0][1]
                    entry = by_id.get((dev, kid))
                    win = windows.get(dev)
                    end = _EPOCH + (slot + 1) * _SLOT
                    if not (entry is not None and win is not None
                            and not status & _TIME_REQUEST
                            and seq > win.top and end <= latest_end
                            and end * 1000 >= oldest_end_ms
                            and entry.valid_at(now)
                            and tag_len.get(kid & 7) == len(data) - body_len
                            and entry.mac.check(data, body_len, tag_len[kid & 7])):
                        general(b, data, addr)
                        continue
                    win.mark(seq)
                    pending[(dev, seq)] = data
                    ds = dev if dev < _TWO63 else dev - _TWO64
                    ss = seq if seq < _TWO63 else seq - _TWO64
                    peer = peers.get(addr)
                    if peer is None:
                        peer = peers[addr] = _peer(addr)
                    frames.append(frame_row(device_id=ds, seq=ss, kid=kid, status=status,
                                            n_records=1, arrived_ms=now_ms, peer=peer, raw=data))
                    values.append(value_row(device_id=ds, slot=slot, import_wh=imp, export_wh=exp,
                                            flags=flags, status=status, seq=ss,
                                            arrived_ms=now_ms, delay_ms=now_ms - end * 1000))
                    accepted += 1
                    _add_ack(acks, addr, dev, kid, entry.mac, seq)
            counts = b.counts
            counts["received"] += b.received
            counts["batches"] += 1
            counts["accepted"] += accepted + b.accepted
            if b.dup_frames:
                counts["duplicate_frames"] += b.dup_frames
            # The acks are computed now but released by store_batch only after the commit.
            out = b.replies
            if mode == "c":
                self._c.acks_out(acks, out, keys_c, self.policy.ack_max_seqs)
            else:
                for (addr, dev, kid), (mac, seqs) in acks.items():
                    if type(seqs) is int:  # the steady state: one frame of the device
                        out.append((addr, mac.ack_one(dev, kid, seqs)))
                    else:
                        out += self._acks_multi(addr, dev, kid, mac, seqs)
            if b.timed:
                t = b.edge_time()
                for addr, dev, kid, mac, seq in b.timed:
                    if seq < 0:  # refused (slot in the future)
                        out.append((addr, wire.encode_ack(mac, dev, kid, time=t,
                                                          refused=[-1 - seq])))
                    else:
                        out.append((addr, wire.encode_ack(mac, dev, kid, [seq], time=t)))
                counts["acks_timed"] += len(b.timed)
        except BaseException:
            # Not a WireReject (those are decisions): the windows may count frames of this
            # batch that will never be stored, so they are rebuilt from the store.
            self.windows.clear()
            raise
        return b

    def _acks_multi(self, addr, dev, kid, mac, seqs):
        """[(addr, ack)] for several seqs of one device in a batch, ack_max_seqs per ack."""
        seqs = sorted(set(seqs))
        step = self.policy.ack_max_seqs
        return [(addr, wire.encode_ack(mac, dev, kid, seqs[i : i + step]))
                for i in range(0, len(seqs), step)]

    def _general(self, b, data, addr):
        """Decide one datagram from scratch (the general path), into the Batch b."""
        if type(data) is not bytes:
            data = bytes(data)
        pol = self.policy
        decided = False  # True once this datagram's rows and window mark are being written
        try:
            pf = wire.parse_frame(data)
            dev = pf.device_id
            seq = pf.seq
            kid = pf.kid
            entry = b.keyring.lookup(dev, kid, b.now)
            if not entry.mac.check(data, pf.body_len, wire.TAG_LEN[kid & 7]):
                raise wire.WireReject(wire.R_BAD_MAC, "MAC mismatch", dev, seq)
            win = self.windows.get(dev)
            if win is None:
                win = self._window(dev)
            state = win.check(seq)
            if state is not _FRESH:
                old = b.pending.get((dev, seq))
                if old is None:
                    old = self.store.frame_raw(dev, seq)
                if old != data:
                    raise wire.WireReject(
                        R_REPLAY if state == replay_guard.SEEN else R_SEQ_BELOW_WINDOW,
                        "seq %d (window top %d)" % (seq, win.top), dev, seq)
                decided = True
                b.dup_frames += 1
            else:
                recs = pf.records
                if recs and _EPOCH + (recs[-1][0] + 1) * _SLOT > b.latest_end:
                    raise wire.WireReject(R_SLOT_IN_FUTURE, "slot %d ends after now + %ds"
                                          % (recs[-1][0], pol.future_tolerance_s), dev, seq)
                decided = True
                win.mark(seq)
                b.pending[(dev, seq)] = data
                ds = s64(dev)
                ss = s64(seq)
                peer = b.peers.get(addr)
                if peer is None:
                    peer = b.peers[addr] = _peer(addr)
                status = pf.status
                now_ms = b.now_ms
                b.frames.append(frame_row(device_id=ds, seq=ss, kid=kid, status=status,
                                          n_records=len(recs), arrived_ms=now_ms, peer=peer,
                                          raw=data))
                if pf.seal is not None:
                    b.seals.append((dev, seq, pf.seal, data, addr))
                old_recs = 0
                for slot, imp, exp, flags in recs:
                    end_ms = (_EPOCH + (slot + 1) * _SLOT) * 1000
                    if end_ms < b.oldest_end_ms:
                        old_recs += 1
                        continue
                    b.values.append(value_row(device_id=ds, slot=slot, import_wh=imp,
                                              export_wh=exp, flags=flags, status=status, seq=ss,
                                              arrived_ms=now_ms, delay_ms=now_ms - end_ms))
                if old_recs:
                    b.counts["rejected_slots." + R_SLOT_TOO_OLD] += old_recs
                    self._reject(b.rejections, b.counts, R_SLOT_TOO_OLD,
                                 "%d of %d records end before the backfill window"
                                 % (old_recs, len(recs)), dev, seq, data, addr, now_ms,
                                 frame_level=False)
                b.accepted += 1
        except wire.WireReject as r:
            self._reject(b.rejections, b.counts, r.reason, r.detail, r.device_id, r.seq,
                         data, addr, b.now_ms)
            if r.reason == R_SLOT_IN_FUTURE and pf.status & _TIME_REQUEST:
                # verified, but its clock is ahead: tell it the time (its slots stay queued)
                b.timed.append((addr, dev, kid, entry.mac, -1 - seq))
            return
        except sqlite3.Error:
            raise  # the store failed: the batch is not stored, devices resend
        except Exception as e:
            if decided:  # half-written decision: fail the batch (windows rebuilt by verify)
                raise
            # Whatever a hostile datagram triggers before a decision costs that datagram only.
            self._reject(b.rejections, b.counts, R_INTERNAL, type(e).__name__, None, None,
                         data, addr, b.now_ms)
            return
        if pf.status & _TIME_REQUEST:  # its own ack, with the time (edge/clock_sync.py)
            b.timed.append((addr, dev, kid, entry.mac, seq))
        else:
            _add_ack(b.acks, addr, dev, kid, entry.mac, seq)  # accepted or a retransmission

    def store_batch(self, batch):
        """Commit a verified batch in one transaction; returns its acks to send."""
        counts = batch.counts
        store = self.store
        try:
            store.begin()
            if batch.frames:
                store.insert_frames(batch.frames)
            values = batch.values
            if values:
                new = store.insert_values(values)
                counts["stored_slots"] += new
                if new != len(values):
                    self._classify_duplicates(values, counts, batch.rejections, batch.now_ms)
            if batch.seals:
                self._store_seals(batch)
            if batch.rejections:
                store.insert_rejections(batch.rejections)
            store.add_counters(counts)
            store.commit()
        except Exception:
            store.rollback()
            self.windows.clear()
            raise
        self.stats.update(counts)
        self.stats["acks_sent"] += len(batch.replies)
        return batch.replies

    def _store_seals(self, batch):
        """Check each accepted seal against the stored values (this batch's included) and
        store it with its verdict; the frame is acked whatever the verdict: the seal is the
        device's statement, a failure is the collector's finding to keep, not to refuse."""
        from host_tools.seal import check

        reg = self.pubkeys() if self.pubkeys is not None else None
        counts = batch.counts
        for dev, seq, raw, data, addr in batch.seals:
            counts["seals_received"] += 1
            try:
                s = edge_seal.parse(raw)
                if s.device_id != dev:
                    verdict, detail = "failed", "seal names device %d" % s.device_id
                elif reg is None:
                    verdict, detail = "unchecked", "no public-key registry (collect --pubkeys)"
                else:
                    res = check.check_day(dev, s.day, check.day_values(self.store, dev, s.day),
                                          [raw], check.registry_lookup(reg))
                    probs = res.seals[0].problems
                    verdict = "failed" if probs else "verified"
                    detail = "; ".join("%s: %s" % p for p in probs) or None
            except edge_seal.SealError as e:
                counts["seals_malformed"] += 1
                self._reject(batch.rejections, counts, R_SEAL_MALFORMED, str(e), dev, seq, data,
                             addr, batch.now_ms, frame_level=False)
                continue
            except sqlite3.Error:
                raise  # the store failed: the batch is not stored, devices resend
            except Exception as e:  # a check bug on strange bytes costs this seal, not the batch
                self._reject(batch.rejections, counts, R_INTERNAL, "seal check: %s"
                             % type(e).__name__, dev, seq, data, addr, batch.now_ms,
                             frame_level=False)
                continue
            counts["seals_" + verdict] += 1
            self.store.put_seal(dev, s.day, s.first, s.count, s.key_no, batch.now_ms, raw,
                                verdict, detail)
            if verdict == "failed" and self.log is not None:
                self.log("seal of device %d day %d slots %d-%d failed: %s"
                         % (dev, s.day, s.first, s.last(), detail))

    def _reject(self, rows, counts, reason, detail, dev, seq, data, addr, now_ms,
                frame_level=True):
        if frame_level:
            counts["rejected"] += 1
            counts["rejected." + reason] += 1
        raw = data if type(data) is bytes else bytes(data)
        rows.append((now_ms, _peer(addr), reason, detail,
                     None if dev is None else s64(dev), None if seq is None else s64(seq),
                     len(raw), raw[: self.policy.max_raw]))
        if self.log is not None and self.log_budget > 0:
            self.log_budget -= 1
            self.log("rejected %s from %s: %s (device %s seq %s)"
                     % (reason, _peer(addr), detail, dev, seq))

    def _classify_duplicates(self, values, counts, rejections, now_ms):
        """Some (device, slot) rows already existed: tell duplicates from conflicts."""
        dev_i, slot_i, seq_i = _V["device_id"], _V["slot"], _V["seq"]
        got_i = (_V["import_wh"], _V["export_wh"], _V["flags"])
        by_dev = collections.defaultdict(list)
        for row in values:
            by_dev[u64(row[dev_i])].append(row)
        for dev, rows in by_dev.items():
            stored = self.store.stored_for(s64(dev), [r[slot_i] for r in rows])
            for r in rows:
                slot = r[slot_i]
                st = stored.get(slot)
                if st is None or s64(st[3]) == r[seq_i]:
                    continue  # inserted by this very row
                sent = tuple(r[i] for i in got_i)
                if (st[0], st[1], st[2]) == sent:
                    counts["duplicate_slots"] += 1
                else:
                    counts[R_SLOT_CONFLICT] += 1
                    seq = u64(r[seq_i])
                    raw = self.store.frame_raw(dev, seq)
                    detail = ("slot %d: stored %d/%d/%d from seq %d kept, seq %d sent %d/%d/%d"
                              % ((slot,) + st[:3] + (st[3], seq) + sent))
                    self._reject(rejections, counts, R_SLOT_CONFLICT, detail, dev, seq,
                                 raw or b"", None, now_ms, frame_level=False)

    def stats_line(self, prefix="collect"):
        return format_stats(self.stats, prefix)


def format_stats(s, prefix="collect"):
    """The stats line: fixed counters first, then every rejection reason seen."""
    parts = ["%s: received=%d accepted=%d stored_slots=%d duplicate_frames=%d "
             "duplicate_slots=%d rejected=%d acks_sent=%d batches=%d"
             % (prefix, s["received"], s["accepted"], s["stored_slots"],
                s["duplicate_frames"], s["duplicate_slots"], s["rejected"], s["acks_sent"],
                s["batches"])]
    for k in sorted(s):
        if k.startswith("rejected.") or k.startswith("rejected_slots.") or k.startswith(
                "seals_") or k in (R_SLOT_CONFLICT, "store_errors"):
            parts.append("%s=%d" % (k, s[k]))
    return " ".join(parts)

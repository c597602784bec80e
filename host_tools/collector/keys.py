"""Device keys of the head-end: the keys file (docs/keys-format.md), validity and rotation.

A device may hold several keys (key_no) at once; each frame names its key in `kid`
(key_no << 3 | alg), so during a rotation frames under the old and the new key both verify
as long as the arrival time lies inside each key's validity interval.
"""
import datetime
import json
import os

from host_tools.collector import wire

FORMAT = "smeter-keys/1"

R_UNKNOWN_KEY = "unknown_key"
R_KEY_NOT_VALID = "key_not_valid"


class KeyFileError(Exception):
    pass


def _time(v, where):
    """ISO 8601 with an explicit offset -> unix seconds (float); None stays None."""
    if v is None:
        return None
    if not isinstance(v, str):
        raise KeyFileError("%s: time must be an ISO 8601 string" % where)
    try:
        t = datetime.datetime.fromisoformat(v)
    except ValueError:
        raise KeyFileError("%s: bad time %r" % (where, v))
    if t.tzinfo is None:
        raise KeyFileError("%s: time %r needs an offset (e.g. +09:00)" % (where, v))
    return t.timestamp()


class KeyEntry:
    """One device key: `key` (bytes) and `mac` (its wire.MacKey) for (device_id, kid), valid
    from not_before (inclusive) to not_after (exclusive), unix seconds, None = unbounded."""

    __slots__ = ("device_id", "key_no", "alg", "kid", "key", "mac", "not_before", "not_after")

    def __init__(self, device_id, key_no, alg, key, not_before=None, not_after=None):
        self.device_id = device_id
        self.key_no = key_no
        self.alg = alg
        self.kid = (key_no << 3) | alg
        self.key = bytes(key)
        self.mac = wire.MacKey(key)
        self.not_before = not_before
        self.not_after = not_after

    def valid_at(self, t):
        if self.not_before is not None and t < self.not_before:
            return False
        return self.not_after is None or t < self.not_after


class Keyring:
    """(device_id, kid) -> KeyEntry. lookup() raises wire.WireReject with a key reason."""

    def __init__(self, entries=()):
        self._by = {}
        for e in entries:
            k = (e.device_id, e.kid)
            if k in self._by:
                raise KeyFileError("duplicate key: device %d key_no %d alg %d"
                                   % (e.device_id, e.key_no, e.alg))
            self._by[k] = e

    def __len__(self):
        return len(self._by)

    @property
    def by_id(self):
        """{(device_id, kid): KeyEntry}, read-only: the collector's fast path looks keys up
        here and leaves every miss to lookup(), which names the reason."""
        return self._by

    def entries(self):
        return list(self._by.values())

    def lookup(self, device_id, kid, now):
        e = self._by.get((device_id, kid))
        if e is None:
            raise wire.WireReject(R_UNKNOWN_KEY, "no key kid=%d" % kid, device_id)
        if not e.valid_at(now):
            raise wire.WireReject(R_KEY_NOT_VALID, "key_no %d outside its validity"
                                  % (kid >> 3), device_id)
        return e


def parse_keys(doc):
    """A decoded keys document -> Keyring. Raises KeyFileError with the offending entry."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError("keys file must be an object with \"format\": %r" % FORMAT)
    items = doc.get("keys")
    if not isinstance(items, list):
        raise KeyFileError("\"keys\" must be a list")
    out = []
    for i, it in enumerate(items):
        where = "keys[%d]" % i
        if not isinstance(it, dict):
            raise KeyFileError(where + ": must be an object")
        unknown = set(it) - {"device_id", "key_no", "alg", "key_hex", "not_before",
                             "not_after", "comment"}
        if unknown:
            raise KeyFileError("%s: unknown fields %s" % (where, sorted(unknown)))
        dev, key_no, alg = it.get("device_id"), it.get("key_no", 0), it.get("alg", 1)
        if type(dev) is not int or not 0 <= dev <= wire.U64:
            raise KeyFileError(where + ": device_id must be an integer 0..2**64-1")
        if type(key_no) is not int or not 0 <= key_no <= 8191:
            raise KeyFileError(where + ": key_no must be an integer 0..8191")
        if alg not in wire.TAG_LEN:
            raise KeyFileError("%s: alg must be one of %s" % (where, sorted(wire.TAG_LEN)))
        try:
            key = bytes.fromhex(it.get("key_hex", ""))
        except (TypeError, ValueError):
            raise KeyFileError(where + ": key_hex must be hex digits")
        if len(key) < wire.MIN_KEY_LEN:
            raise KeyFileError("%s: key shorter than %d bytes" % (where, wire.MIN_KEY_LEN))
        nb = _time(it.get("not_before"), where + ".not_before")
        na = _time(it.get("not_after"), where + ".not_after")
        if nb is not None and na is not None and na <= nb:
            raise KeyFileError(where + ": not_after must be later than not_before")
        out.append(KeyEntry(dev, key_no, alg, key, nb, na))
    return Keyring(out)


def load_keys(path):
    with open(path, "rb") as f:
        try:
            doc = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise KeyFileError("%s: not JSON: %s" % (path, e))
    return parse_keys(doc)


def keys_document(entries):
    """[(device_id, key_no, key_bytes[, not_before_iso, not_after_iso])] -> keys document."""
    keys = []
    for e in entries:
        d = {"device_id": e[0], "key_no": e[1], "alg": 1, "key_hex": bytes(e[2]).hex()}
        if len(e) > 3 and e[3] is not None:
            d["not_before"] = e[3]
        if len(e) > 4 and e[4] is not None:
            d["not_after"] = e[4]
        keys.append(d)
    return {"format": FORMAT, "keys": keys}


def write_keys(path, entries):
    """Write a keys file atomically (tests, provisioning scripts)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(keys_document(entries), f, indent=1)
    os.replace(tmp, path)


class KeyFile:
    """A keys file that reloads itself when its mtime changes (rotation without restart)."""

    def __init__(self, path):
        self.path = path
        self._stamp = None
        self.keyring = Keyring()
        self.reload()

    def _mtime(self):
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size)

    def reload(self):
        stamp = self._mtime()
        self.keyring = load_keys(self.path)
        self._stamp = stamp
        return True

    def maybe_reload(self):
        """Reload if the file changed; keep the old keyring if the new file is bad.

        Returns None (unchanged), True (reloaded) or the KeyFileError/OSError text.
        """
        try:
            stamp = self._mtime()
            if stamp == self._stamp:
                return None
            self._stamp = stamp  # a bad file is reported once, not at every check
            self.keyring = load_keys(self.path)
            return True
        except (KeyFileError, OSError) as e:
            return str(e)

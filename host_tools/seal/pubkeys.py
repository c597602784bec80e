"""Public seal keys (公開鍵レジストリ): the registry file `smeter-pubkeys/1` (docs/seals.md).

It holds no secret: the collector, auditors and customers may all have a copy. A device may
have several keys over its life (key_no); a seal names the key that signed it, and a key that
was retired verifies only seals of days up to its `retired` date.
"""
import datetime
import hashlib

from edge import p256, seal

from host_tools.seal import read_json, write_json

FORMAT = "smeter-pubkeys/1"
_FIELDS = {"device_id", "key_no", "alg", "public_key_hex", "created", "retired", "comment"}


class RegistryError(Exception):
    pass


class PubKey:
    __slots__ = ("device_id", "key_no", "alg", "public_key", "created", "retired", "comment")

    def __init__(self, device_id, key_no, public_key, created=None, retired=None, comment=None,
                 alg="ES256"):
        self.device_id = device_id
        self.key_no = key_no
        self.alg = alg
        self.public_key = public_key
        self.created = created
        self.retired = retired
        self.comment = comment

    def fingerprint(self):
        """Short, printable identity of the key: sha256 of the SEC1 bytes, first 8 bytes."""
        return "sha256:" + hashlib.sha256(self.public_key).hexdigest()[:16]

    def covers_day(self, day_code):
        """False if the key was retired before this yyyymmdd day."""
        if self.retired is None:
            return True
        return day_code <= int(self.retired.replace("-", ""))

    def to_json(self):
        d = {"device_id": self.device_id, "key_no": self.key_no, "alg": self.alg,
             "public_key_hex": self.public_key.hex()}
        for k in ("created", "retired", "comment"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d


def _date(v, where):
    if v is None:
        return None
    try:
        datetime.date.fromisoformat(v)
    except (TypeError, ValueError):
        raise RegistryError("%s: must be a date YYYY-MM-DD, got %r" % (where, v))
    return v


def parse_entry(it, where):
    if not isinstance(it, dict):
        raise RegistryError(where + ": must be an object")
    unknown = set(it) - _FIELDS
    if unknown:
        raise RegistryError("%s: unknown fields %s" % (where, sorted(unknown)))
    dev, key_no, alg = it.get("device_id"), it.get("key_no", 0), it.get("alg", "ES256")
    if type(dev) is not int or not 0 <= dev < 1 << 64:
        raise RegistryError(where + ": device_id must be an integer 0..2**64-1")
    if type(key_no) is not int or not 0 <= key_no <= 8191:
        raise RegistryError(where + ": key_no must be an integer 0..8191")
    if alg != "ES256":
        raise RegistryError("%s: alg %r not supported (ES256)" % (where, alg))
    try:
        pub = bytes.fromhex(it.get("public_key_hex", ""))
        p256.decode_point(pub)
    except (TypeError, ValueError, p256.SignatureError) as e:
        raise RegistryError("%s: public_key_hex: %s" % (where, e))
    return PubKey(dev, key_no, pub, _date(it.get("created"), where + ".created"),
                  _date(it.get("retired"), where + ".retired"), it.get("comment"), alg)


class Registry:
    """(device_id, key_no) -> PubKey."""

    def __init__(self, keys=()):
        self._by = {}
        for k in keys:
            self.add(k)

    def add(self, k):
        if (k.device_id, k.key_no) in self._by:
            raise RegistryError("duplicate key: device %d key_no %d" % (k.device_id, k.key_no))
        self._by[(k.device_id, k.key_no)] = k

    def get(self, device_id, key_no):
        return self._by.get((device_id, key_no))

    def for_device(self, device_id):
        return sorted((k for (d, _), k in self._by.items() if d == device_id),
                      key=lambda k: k.key_no)

    def entries(self):
        return [self._by[k] for k in sorted(self._by)]

    def __len__(self):
        return len(self._by)

    def document(self):
        return {"format": FORMAT, "keys": [k.to_json() for k in self.entries()]}


def parse(doc, where="registry"):
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RegistryError("%s: must be an object with \"format\": %r" % (where, FORMAT))
    items = doc.get("keys")
    if not isinstance(items, list):
        raise RegistryError("%s: \"keys\" must be a list" % where)
    return Registry(parse_entry(it, "%s: keys[%d]" % (where, i)) for i, it in enumerate(items))


def load(path):
    return parse(read_json(path, RegistryError), path)


def write(path, registry):
    """Write the registry atomically (temp file + rename)."""
    write_json(path, registry.document())


def key_for_seal(registry, s):
    """The PubKey that should have signed parsed seal s, or (None, reason)."""
    k = registry.get(s.device_id, s.key_no)
    if k is None:
        return None, "no public key %d for device %d in the registry" % (s.key_no, s.device_id)
    if s.alg != seal.ALG_ES256:
        return None, "seal algorithm %d, registry key is %s" % (s.alg, k.alg)
    if not k.covers_day(s.day):
        return None, "key %d was retired on %s, before the sealed day %d" % (s.key_no, k.retired, s.day)
    return k, None

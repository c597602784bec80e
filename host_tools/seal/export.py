"""The seal export file `smeter-seal-export/1` (docs/seals.md): one device-day's values as the
collector holds them, the device's seals for that day and its public keys, so that anyone
can check the day offline with `smeter seal verify` and no secret of the collector."""
import datetime

from edge import seal, slots

from host_tools.seal import check, pubkeys, read_json

FORMAT = "smeter-seal-export/1"
_FIELDS = {"format", "device_id", "day", "values", "seals", "public_keys"}
_VALUE_FIELDS = {"slot", "start", "import_wh", "export_wh", "flags"}


class ExportError(Exception):
    pass


def build(store, device_id, day, registry=None):
    """The export document of one device-day (day: yyyymmdd int) from a collector store."""
    values = check.day_values(store, device_id, day)
    n = seal.day_number(day)
    rows = []
    for s in sorted(values):
        imp, exp, fl = values[s]
        rows.append({"slot": s, "start": slots.slot_iso(slots.slot_from_day(n, s)),
                     "import_wh": imp, "export_wh": exp, "flags": fl})
    doc = {"format": FORMAT, "device_id": device_id, "day": check.day_iso(day),
           "values": rows, "seals": [r.raw.hex() for r in store.seals(device_id, day)]}
    if registry is not None:
        doc["public_keys"] = [k.to_json() for k in registry.for_device(device_id)]
    return doc


class Export:
    __slots__ = ("device_id", "day", "values", "seals", "registry")


def parse(doc, where="export"):
    """Validate an export document -> Export; ExportError names the offending field."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ExportError("%s: must be an object with \"format\": %r" % (where, FORMAT))
    unknown = set(doc) - _FIELDS
    if unknown:
        raise ExportError("%s: unknown fields %s" % (where, sorted(unknown)))
    e = Export()
    e.device_id = doc.get("device_id")
    if type(e.device_id) is not int or not 0 <= e.device_id < 1 << 64:
        raise ExportError(where + ": device_id must be an integer 0..2**64-1")
    d = doc.get("day")
    try:
        dt = datetime.date.fromisoformat(d)
        if len(d) != 10 or not 2000 <= dt.year <= 2199:
            raise ValueError
    except (TypeError, ValueError):
        raise ExportError("%s: day must be a date YYYY-MM-DD, got %r" % (where, d))
    e.day = dt.year * 10000 + dt.month * 100 + dt.day
    e.values = {}
    rows = doc.get("values")
    if not isinstance(rows, list):
        raise ExportError(where + ": values must be a list")
    for i, r in enumerate(rows):
        w = "%s: values[%d]" % (where, i)
        if not isinstance(r, dict) or set(r) - _VALUE_FIELDS:
            raise ExportError(w + ": must be an object with slot, import_wh, export_wh, flags")
        vals = []
        for f, hi in (("slot", 48), ("import_wh", 0xFFFFFFFF), ("export_wh", 0xFFFFFFFF),
                      ("flags", 0xFFFF)):
            v = r.get(f)
            if type(v) is not int or not (1 if f == "slot" else 0) <= v <= hi:
                raise ExportError("%s.%s: must be an integer in range, got %r" % (w, f, v))
            vals.append(v)
        if vals[0] in e.values:
            raise ExportError("%s: slot %d appears twice" % (w, vals[0]))
        e.values[vals[0]] = tuple(vals[1:])
    seals = doc.get("seals", [])
    if not isinstance(seals, list):
        raise ExportError(where + ": seals must be a list of hex strings")
    e.seals = []
    for i, h in enumerate(seals):
        try:
            e.seals.append(bytes.fromhex(h))
        except (TypeError, ValueError):
            raise ExportError("%s: seals[%d]: not hex" % (where, i))
    e.registry = None
    if "public_keys" in doc:
        keys = doc["public_keys"]
        if not isinstance(keys, list):
            raise ExportError(where + ": public_keys must be a list")
        try:
            e.registry = pubkeys.Registry(
                pubkeys.parse_entry(k, "%s: public_keys[%d]" % (where, i)) for i, k in enumerate(keys))
        except pubkeys.RegistryError as x:
            raise ExportError(str(x))
    return e


def load(path):
    return parse(read_json(path, ExportError), path)

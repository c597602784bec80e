"""The daily seal in a certification report (docs/certification.md): the device-day's values as
exported from the collector (`smeter seal export`) are checked against the device's signed
seal, and the values this report verifies are checked against what the device signed, so a
reader knows the certified 30-minute values are the ones the meter itself vouched for
(docs/seals.md)."""
from edge import seal as edge_seal
from edge import slots

from host_tools.seal import check, export, pubkeys

from .compare import VerifyError


def load(path, pubkeys_path=None):
    """-> (export.Export, registry, where the public key came from); VerifyError names the file."""
    try:
        ex = export.load(path)
        if pubkeys_path:
            return ex, pubkeys.load(pubkeys_path), pubkeys_path
        if ex.registry is None:
            raise VerifyError("--seal %s: the file has no public_keys; give --seal-pubkeys "
                              "REGISTRY" % path)
        return ex, ex.registry, "the export file's own public_keys (not independent of the file)"
    except (OSError, ValueError, export.ExportError, pubkeys.RegistryError) as e:
        raise VerifyError("--seal: %s" % e)


def evaluate(ex, registry, key_source, dev_slots):
    """The report's `seal` section (JSON-able) and the reasons it adds to the verdict.

    dev_slots: the 30-minute values the report verifies (compare.DevSlot). A slot of the sealed
    day that the report verifies with a value different from the one in the export is a
    failure: the certified value is not the value the device signed."""
    res = check.check_day(ex.device_id, ex.day, ex.values, ex.seals, check.registry_lookup(registry))
    first = slots.slot_from_day(edge_seal.day_number(ex.day), 1)
    compared, differ = 0, []
    for d in dev_slots:
        k = d.slot - first + 1
        if not 1 <= k <= edge_seal.SLOTS_PER_DAY or k not in ex.values:
            continue
        compared += 1
        imp, exp, _ = ex.values[k]
        if (d.imp is not None and d.imp != imp) or (d.exp is not None and d.exp != exp):
            differ.append("slot %d: verified import %s / export %s Wh, sealed export file "
                          "import %d / export %d Wh" % (k, d.imp, d.exp, imp, exp))
    doc = res.to_json()
    doc.update({"key_source": key_source,
                "slots": [{"slot": s, "verdict": v} for s, v in sorted(res.slots.items())],
                "verified_slots_compared": compared, "verified_slots_differing": differ})
    reasons = []
    if res.verdict == check.FAIL:
        reasons.append("daily seal FAIL: " + "; ".join("%s: %s" % p for p in res.problems))
    if differ:
        reasons.append("the verified values differ from the sealed export: " + "; ".join(differ))
    if compared == 0:
        reasons.append("the sealed day %s shares no slot with the verified values"
                       % check.day_iso(ex.day))
    doc["failed"] = bool(reasons)
    return doc, reasons

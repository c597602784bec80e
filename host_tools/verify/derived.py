"""Refuse a "reference" that is the device's own data (docs/certification.md#independence).

A reference derived from the device trace agrees with it by construction, so comparing the
two proves nothing: the checks below catch the copies that happen by mistake (the device
trace given twice, a thinned copy of it, its own `smeter replay` output). They cannot catch
a deliberately relabelled file; the reference meter's declaration (identity, calibration
certificate) is what the signer vouches for.
"""
from .compare import VerifyError
from .reference import read_samples

REPLAY_HEADER = "slot_start,slot,import_wh,export_wh,flags"


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _first_line(data):
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip()


def same_samples(dev, ref):
    """True when every reference sample sits at a device timestamp with equal values in every
    column both have (a copy, or a thinned copy, of the device trace)."""
    if len(ref) < 2:
        return False
    at = {t: i for i, t in enumerate(dev.t)}
    shared = [c for c in ("power", "imp", "exp") if dev.has(c) and ref.has(c)]
    if not shared:
        return False
    for j, t in enumerate(ref.t):
        i = at.get(t)
        if i is None:
            return False
        for c in shared:
            if dev.value(c, i) != ref.value(c, j):
                return False
    return True


def same_slot_values(dev_slots, ref_slots):
    """True when the reference holds exactly the device's 30-minute values (same slots, same
    numbers): the replay output of the device trace."""
    dev = {d.slot: d for d in dev_slots}
    if set(dev) != set(ref_slots) or not dev:
        return False
    for k, r in ref_slots.items():
        for d in ("imp", "exp"):
            rv = r.value(d)
            if rv is not None and rv != dev[k].value(d):
                return False
    return True


def check(device_path, reference_path, ref_is_slots, device_slots, replay_text=None,
          device_samples=None, ref_slots=None):
    """Raise VerifyError when the reference is derived from the device's data.

    device_slots: the device's 30-minute values (DevSlot list); replay_text: the device's
    replay CSV when the device input is a trace; device_samples: its Samples (read lazily)."""
    rb = _bytes(reference_path)
    if rb == _bytes(device_path):
        raise VerifyError("--reference %s is byte for byte the device's own file %s: a reference "
                          "must come from a separate meter" % (reference_path, device_path))
    if replay_text is not None and rb.replace(b"\r\n", b"\n") == replay_text.encode():
        raise VerifyError("--reference %s is byte for byte the device's own `smeter replay` "
                          "output: a reference must come from a separate meter" % reference_path)
    if ref_is_slots:
        if _first_line(rb) == REPLAY_HEADER and same_slot_values(device_slots, ref_slots):
            raise VerifyError("--reference %s holds the device's own 30-minute values (replay "
                              "output with the same numbers in every slot): a reference must "
                              "come from a separate meter" % reference_path)
        return
    if device_samples is None:
        return
    if same_samples(device_samples, read_samples(reference_path)):
        raise VerifyError("--reference %s has the device trace's values at the device trace's "
                          "timestamps (a copy or thinned copy of %s): a reference must come "
                          "from a separate meter" % (reference_path, device_path))

"""Who and what a certification run is about, as declared in small JSON files
(docs/certification.md#declarations): the meter under test (--meter), the reference meter and
its calibration (--reference-meter), the laboratory and operator (--lab).

An accuracy verdict needs a declared reference: without its identity, calibration certificate
and stated uncertainty, a "reference" is just another file. Errors name the file and field.
"""
import datetime
import json
import re
from fractions import Fraction

from .compare import VerifyError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

METER_FIELDS = (  # (key, label, required)
    ("maker", "maker", True), ("model", "model", True), ("serial", "serial number", True),
    ("firmware_version", "firmware version", True),
    ("firmware_sha256", "firmware image SHA-256", False),
    ("rated_voltage_v", "rated voltage (V)", False), ("rated_current_a", "rated current (A)", False),
    ("rated_power_w", "rated power (W, 100 % current, rated voltage, PF 1)", False),
    ("direction", "measured direction (import/export)", False),
    ("notification", "notification under the specified-metering scheme (届出)", False),
)
REFERENCE_FIELDS = (
    ("maker", "maker", True), ("model", "model", True), ("serial", "serial number", True),
    ("certificate_id", "calibration certificate", True),
    ("calibrated_on", "calibrated on", True), ("calibration_due", "calibration due", False),
    ("calibrated_by", "calibrated by", False),
    ("uncertainty_pct", "expanded uncertainty (% of reading)", True),
    ("coverage_factor", "coverage factor k", True),
    ("uncertainty_wh", "expanded uncertainty, absolute part (Wh)", False),
)
LAB_FIELDS = (
    ("lab", "laboratory", True), ("address", "address", False), ("operator", "operator", True),
    ("location", "where the traces were recorded", False),
    ("recorded_from", "recorded from", False), ("recorded_to", "recorded to", False),
    ("temperature_c", "ambient temperature (°C)", False), ("notes", "notes", False),
)


def _load(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise VerifyError("%s %s: cannot read (%s)" % (what, path, e.strerror or e))
    except (ValueError, UnicodeDecodeError) as e:
        raise VerifyError("%s %s: not JSON (%s)" % (what, path, e))
    if not isinstance(d, dict):
        raise VerifyError("%s %s: expected a JSON object" % (what, path))
    return d


def _check(d, fields, path, what):
    known = {k for k, _, _ in fields}
    for k in d:
        if k not in known and not k.startswith("_"):
            raise VerifyError("%s %s: unknown field %r (known: %s)" % (what, path, k,
                                                                       ", ".join(sorted(known))))
    for k, _, req in fields:
        v = d.get(k)
        if req and (v is None or (isinstance(v, str) and not v.strip())):
            raise VerifyError("%s %s: field %r is required" % (what, path, k))


def _num(d, k, path, what, positive=False):
    v = d.get(k)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise VerifyError("%s %s: %s must be a number" % (what, path, k))
    try:
        x = Fraction(str(v))
    except (ValueError, ZeroDivisionError):
        raise VerifyError("%s %s: %s %r is not a number" % (what, path, k, v))
    if x < 0 or (positive and x == 0):
        raise VerifyError("%s %s: %s must be %s" % (what, path, k, "> 0" if positive else ">= 0"))
    return x


def _date(d, k, path, what):
    v = d.get(k)
    if v is None:
        return None
    if not isinstance(v, str) or not _DATE.match(v):
        raise VerifyError("%s %s: %s %r is not a date YYYY-MM-DD" % (what, path, k, v))
    try:
        return datetime.date.fromisoformat(v)
    except ValueError:
        raise VerifyError("%s %s: %s %r is not a valid date" % (what, path, k, v))


def load_meter(path):
    """The meter under test; adds 'rated_power' (Fraction W or None)."""
    what = "--meter"
    d = _load(path, what)
    _check(d, METER_FIELDS, path, what)
    sha = d.get("firmware_sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.match(sha)):
        raise VerifyError("%s %s: firmware_sha256 must be 64 lower-case hex digits" % (what, path))
    if d.get("direction", "import") not in ("import", "export"):
        raise VerifyError("%s %s: direction must be import or export" % (what, path))
    v = _num(d, "rated_voltage_v", path, what, True)
    i = _num(d, "rated_current_a", path, what, True)
    p = _num(d, "rated_power_w", path, what, True)
    d["rated_power"] = p if p is not None else (v * i if v is not None and i is not None else None)
    return d


def load_reference_meter(path, today=None):
    """The reference meter; adds 'u_rel' (fraction of the reading) and 'u_abs' (Wh).

    Refuses a calibration in the future or past its due date: a lab would not sign with it."""
    what = "--reference-meter"
    d = _load(path, what)
    _check(d, REFERENCE_FIELDS, path, what)
    today = today or datetime.date.today()
    cal = _date(d, "calibrated_on", path, what)
    due = _date(d, "calibration_due", path, what)
    if cal > today:
        raise VerifyError("%s %s: calibrated_on %s is in the future" % (what, path, cal))
    if due is not None and due < today:
        raise VerifyError("%s %s: calibration expired on %s (calibration_due)" % (what, path, due))
    u = _num(d, "uncertainty_pct", path, what)
    k = _num(d, "coverage_factor", path, what, True)
    if u >= 100:
        raise VerifyError("%s %s: uncertainty_pct must be below 100" % (what, path))
    d["u_rel"] = u / 100
    d["u_abs"] = _num(d, "uncertainty_wh", path, what) or Fraction(0)
    d["k"] = k
    return d


def load_lab(path):
    what = "--lab"
    d = _load(path, what)
    _check(d, LAB_FIELDS, path, what)
    return d


def rows(d, fields):
    """[(label, text)] of a declaration, 'not declared' where a field is absent."""
    out = []
    for k, label, _ in fields:
        v = None if d is None else d.get(k)
        out.append((label, "not declared" if v is None or v == "" else str(v)))
    return out

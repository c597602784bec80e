"""Signing a certification report and checking one (docs/certification.md#signing-and-checking).

The signature is ECDSA P-256 / SHA-256 (ES256, edge/p256.py: the project's seal algorithm)
over the canonical report data (the bytes embedded as script#report-data, whose SHA-256 closes
the page). The signer's key file is JSON {"signer": "...", "key_hex": "<32-byte private key>"};
the page carries the signer's name, public key and signature, so anyone can check the page
with `smeter verify --check-report index.html`. Trusting the public key (that it is the
lab's) is outside the file: compare its fingerprint with the one the lab publishes.
"""
import hashlib
import html
import json
import re

from edge import p256

from .compare import VerifyError

_DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)
_SIG = re.compile(r'<script type="application/json" id="report-signature">(.*?)</script>', re.S)
_SHA = re.compile(r'id="data-sha256">([0-9a-f]{64})<')
_HEX = re.compile(r"^[0-9a-f]{64}$")


def load_key(path):
    """-> (signer, 32-byte private key); VerifyError names the file and field."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise VerifyError("--sign-key %s: cannot read (%s)" % (path, e.strerror or e))
    except ValueError as e:
        raise VerifyError("--sign-key %s: not JSON (%s)" % (path, e))
    if not isinstance(d, dict) or not isinstance(d.get("signer"), str) or not d["signer"].strip():
        raise VerifyError("--sign-key %s: field 'signer' (who signs) is required" % path)
    k = d.get("key_hex")
    if not isinstance(k, str) or not _HEX.match(k):
        raise VerifyError("--sign-key %s: key_hex must be 64 lower-case hex digits" % path)
    priv = bytes.fromhex(k)
    if not 0 < int.from_bytes(priv, "big") < p256.N:
        raise VerifyError("--sign-key %s: key_hex is not a valid P-256 private key" % path)
    return d["signer"].strip(), priv


def fingerprint(pub):
    return hashlib.sha256(pub).hexdigest()[:16]


def sign(data_text, signer, priv):
    """The signature block (dict) for the canonical report data text."""
    pub = p256.public_key(priv)
    digest = hashlib.sha256(data_text.encode("ascii")).digest()
    return {"alg": "ES256", "signer": signer, "public_key": pub.hex(),
            "fingerprint": fingerprint(pub), "data_sha256": digest.hex(),
            "signature": p256.sign_digest(priv, digest).hex()}


def check_page(text):
    """Check a report page -> (ok, [lines]). VerifyError when it is not a report page."""
    m = _DATA.search(text)
    h = _SHA.search(text)
    if not m or not h:
        raise VerifyError("not a smeter verify report (no report-data or data-sha256)")
    data = m.group(1)
    digest = hashlib.sha256(data.encode("utf-8")).digest()
    lines, ok = [], True
    if digest.hex() == h.group(1):
        lines.append("data SHA-256 %s matches the page" % h.group(1))
    else:
        ok = False
        lines.append("data SHA-256 is %s, the page says %s: the data was changed"
                     % (digest.hex(), h.group(1)))
    try:
        doc = json.loads(data)
        lines.append("verdict in the data: %s (%s)" % (doc.get("headline"), doc.get("verdict")))
    except ValueError:
        ok = False
        lines.append("the embedded data is not JSON")
    s = _SIG.search(text)
    if s is None:
        lines.append("not signed")
        return ok, lines
    try:
        sig = json.loads(html.unescape(s.group(1)))
        pub = bytes.fromhex(sig["public_key"])
        good = sig["data_sha256"] == digest.hex() and p256.verify_digest(
            pub, digest, bytes.fromhex(sig["signature"]))
    except (ValueError, KeyError, TypeError, p256.SignatureError) as e:
        ok = False
        lines.append("signature block unreadable (%s)" % e)
        return ok, lines
    if good:
        lines.append("signature by %s valid (ES256, public key fingerprint %s)"
                     % (sig["signer"], fingerprint(pub)))
    else:
        ok = False
        lines.append("signature by %s does NOT match the data" % sig.get("signer"))
    return ok, lines

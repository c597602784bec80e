"""edge/p256.py against an independent implementation: the `cryptography` package (OpenSSL).

On random keys and messages: our public key equals OpenSSL's, OpenSSL verifies our
signatures, we verify OpenSSL's (random-nonce) signatures, and we refuse what OpenSSL
refuses after a change to the message or the signature.
"""
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import p256

privs = st.integers(min_value=1, max_value=p256.N - 1)
messages = st.binary(max_size=300)


def _ossl_key(d):
    return ec.derive_private_key(d, ec.SECP256R1())


def _ossl_verifies(pub_key, msg, sig64):
    der = encode_dss_signature(int.from_bytes(sig64[:32], "big"), int.from_bytes(sig64[32:], "big"))
    try:
        pub_key.verify(der, msg, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


@settings(max_examples=40, deadline=None)
@given(privs, messages)
def test_public_keys_and_signatures_agree_with_openssl(d, msg):
    key = _ossl_key(d)
    priv = d.to_bytes(32, "big")
    ossl_pub = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert p256.public_key(priv) == ossl_pub
    sig = p256.sign(priv, msg)
    assert _ossl_verifies(key.public_key(), msg, sig)
    assert p256.verify(ossl_pub, msg, sig)
    # OpenSSL's own signature (random nonce) verifies with ours
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    theirs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert p256.verify(ossl_pub, msg, theirs)


@settings(max_examples=40, deadline=None)
@given(privs, messages, st.integers(min_value=0, max_value=511), st.booleans())
def test_tampered_signatures_and_messages_are_refused_by_both(d, msg, bit, on_sig):
    key = _ossl_key(d)
    priv = d.to_bytes(32, "big")
    pub = p256.public_key(priv)
    sig = p256.sign(priv, msg, low_s=bool(bit & 1))
    if on_sig:
        bad = bytearray(sig)
        bad[bit // 8] ^= 1 << (bit % 8)
        sig, m2 = bytes(bad), msg
    else:
        m2 = msg + bytes([bit & 0xFF])
    ours = p256.verify(pub, m2, sig)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    theirs = 0 < r < p256.N and 0 < s < p256.N and _ossl_verifies(key.public_key(), m2, sig)
    assert ours == theirs
    assert ours is False


@settings(max_examples=30, deadline=None)
@given(privs, st.binary(min_size=32, max_size=32), st.integers(min_value=1, max_value=40))
def test_any_step_size_gives_the_same_signature(d, digest, ops):
    priv = d.to_bytes(32, "big")
    s = p256.Signer(priv, digest)
    while not s.step(ops):
        pass
    assert s.signature() == p256.sign_digest(priv, digest)
    assert p256.verify_digest(p256.public_key(priv), digest, s.signature())


def test_verify_digest_matches_hash_of_message():
    d = 0x1234567
    priv = d.to_bytes(32, "big")
    sig = p256.sign(priv, b"abc")
    assert p256.verify_digest(p256.public_key(priv), hashlib.sha256(b"abc").digest(), sig)

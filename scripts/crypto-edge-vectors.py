#!/usr/bin/env python3
"""Edge-case signatures for src/trust/signature.rs tests, made with Python's `cryptography` and
plain integer arithmetic (independently of aws-lc-rs, which the verifier uses).

Run from the repository root: python3 scripts/crypto-edge-vectors.py
Prints Rust constants; they are pasted into the tests of src/trust/signature.rs.

- ECDSA P-256 with the testkit key `TestKey::ecdsa(9)` (scalar 0x11 then 31 bytes 0x09):
  a low-S signature of b"message" and the same signature with S replaced by n - S (high S).
- RSA-PSS SHA-256 with the testkit RSA key: salt lengths 32 (Notary's), 0 and 20.
- RSA PKCS#1 v1.5 SHA-256 with the testkit RSA key.
- Ed25519 with the RFC 8032 test-1 key: R = the identity point and S = h*a mod L, which an
  RFC 8032 cofactorless verifier without a small-order check accepts.
"""
import hashlib
import re

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

MSG = b"message"


def rust(name, data):
    print(f'const {name}: &str = "{data.hex()}";')


# ECDSA
n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
scalar = int.from_bytes(bytes([0x11] + [9] * 31), "big")
sk = ec.derive_private_key(scalar, ec.SECP256R1())
while True:
    r, s = decode_dss_signature(sk.sign(MSG, ec.ECDSA(hashes.SHA256())))
    if s <= n // 2:
        break
rust("ECDSA_LOW_S", r.to_bytes(32, "big") + s.to_bytes(32, "big"))
rust("ECDSA_HIGH_S", r.to_bytes(32, "big") + (n - s).to_bytes(32, "big"))

# RSA
src = open("src/trust/testkit.rs").read()
pem = re.search(r'const RSA_PEM: &str = "\n(.*?)";', src, re.S).group(1).strip().encode()
rsa_key = serialization.load_pem_private_key(pem, password=None)
for salt in (32, 0, 20):
    sig = rsa_key.sign(
        MSG, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256()
    )
    rust(f"RSA_PSS_SALT_{salt}", sig)
rust("RSA_PKCS1", rsa_key.sign(MSG, padding.PKCS1v15(), hashes.SHA256()))

# Ed25519, small-order R
p = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
hs = bytearray(hashlib.sha512(seed).digest()[:32])
hs[0] &= 248
hs[31] &= 127
hs[31] |= 64
a = int.from_bytes(hs, "little")
R = (1).to_bytes(32, "little")  # the identity point (x = 0, y = 1)
h = int.from_bytes(hashlib.sha512(R + public + MSG).digest(), "little") % L
S = h * a % L
rust("ED25519_IDENTITY_R", R + S.to_bytes(32, "little"))

#!/usr/bin/python3
"""lithos's v2 secrets, made and opened with libsodium (PyNaCl), as lithos
makes them: an implementation independent of cairn's, for its tests.

The format (lithos's docs/tips/secrets.rst, src/bin/lithos_crypt.rs,
src/nacl.rs): v2:KEY:NAMESPACE:SECRET:DATA, where KEY, NAMESPACE and SECRET
are base64 of the 6-byte BLAKE2b of the ed25519 public key (raw 32 bytes),
of the namespace and of the secret, and DATA is base64 of
crypto_box_seal("NAMESPACE:SECRET") for the ed25519 key turned into X25519
(crypto_sign_ed25519_pk_to_curve25519; the private side from SHA-512 of the
seed, clamped: crypto_sign_ed25519_sk_to_curve25519).

Needs Debian's python3-nacl and python3-cryptography (for the OpenSSH key
format).

  lithos-secret.py key SEED_HEX DIR      write DIR/key (OpenSSH private key,
                                         0600) and DIR/key.pub
  lithos-secret.py encrypt PUB NS        encrypt stdin for PUB (a .pub file)
  lithos-secret.py decrypt KEY           decrypt the value on stdin with KEY
                                         (an OpenSSH private key file);
                                         prints NAMESPACE:SECRET
"""

import base64
import hashlib
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl import bindings
from nacl.public import PrivateKey, PublicKey, SealedBox


def short_hash(data):
    return base64.b64encode(hashlib.blake2b(data, digest_size=6).digest()).decode()


def ed25519_public(path):
    line = open(path).read().split()
    assert line[0] == "ssh-ed25519", line[0]
    blob = base64.b64decode(line[1])
    n = int.from_bytes(blob[:4], "big")
    assert blob[4 : 4 + n] == b"ssh-ed25519"
    rest = blob[4 + n :]
    m = int.from_bytes(rest[:4], "big")
    assert m == 32
    return rest[4:36]


def key(seed_hex, out):
    k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    pem = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = k.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path = os.path.join(out, "key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, pem)
    os.close(fd)
    with open(path + ".pub", "wb") as f:
        f.write(pub + b" test\n")


def encrypt(pub_path, ns):
    secret = sys.stdin.buffer.read()
    ed = ed25519_public(pub_path)
    curve = bindings.crypto_sign_ed25519_pk_to_curve25519(ed)
    sealed = SealedBox(PublicKey(curve)).encrypt(ns.encode() + b":" + secret)
    print(
        "v2:%s:%s:%s:%s"
        % (
            short_hash(ed),
            short_hash(ns.encode()),
            short_hash(secret),
            base64.b64encode(bytes(sealed)).decode(),
        )
    )


def decrypt(key_path):
    value = sys.stdin.read().strip()
    k = serialization.load_ssh_private_key(open(key_path, "rb").read(), None)
    seed = k.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    ed_pk = k.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    curve_sk = bindings.crypto_sign_ed25519_sk_to_curve25519(seed + ed_pk)
    v, key_hash, ns_hash, secret_hash, data = value.split(":")
    assert v == "v2"
    assert key_hash == short_hash(ed_pk), "key hash"
    plain = SealedBox(PrivateKey(curve_sk)).decrypt(base64.b64decode(data))
    ns, secret = plain.split(b":", 1)
    assert ns_hash == short_hash(ns), "namespace hash"
    assert secret_hash == short_hash(secret), "secret hash"
    sys.stdout.buffer.write(plain)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "key":
        key(sys.argv[2], sys.argv[3])
    elif cmd == "encrypt":
        encrypt(sys.argv[2], sys.argv[3])
    elif cmd == "decrypt":
        decrypt(sys.argv[2])
    else:
        sys.exit("usage: see the script's doc")

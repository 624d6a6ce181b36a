"""Encrypts a secret for a Zuul project, as `zuul-client encrypt` does.

Usage: python encrypt.py PUBLIC_KEY_PEM  (plaintext in the environment
variable SECRET_PLAINTEXT, never on a command line). Prints the YAML
value for a secret field: `!encrypted/pkcs1-oaep` and its base64 chunks.
Run with the Zuul venv's python (it uses zuul.lib.encryption).
"""
import base64
import os
import sys

from cryptography.hazmat.primitives import serialization

from zuul.lib import encryption


def main():
    with open(sys.argv[1], "rb") as f:
        public_key = serialization.load_pem_public_key(f.read())
    plaintext = os.environ["SECRET_PLAINTEXT"].encode()
    # OAEP with SHA-1 leaves key bytes - 42 bytes of room per chunk.
    room = public_key.key_size // 8 - 42
    chunks = [plaintext[i:i + room] for i in range(0, len(plaintext), room)]
    print("!encrypted/pkcs1-oaep")
    for chunk in chunks:
        cipher = encryption.encrypt_pkcs1_oaep(chunk, public_key)
        print("  - " + base64.b64encode(cipher).decode())


if __name__ == "__main__":
    main()

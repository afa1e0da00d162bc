"""Encryption at rest of secret configuration values.

Example:
    >>> box = SecretBox("any passphrase or generated key")
    >>> box.decrypt(box.encrypt({"webhookUrl": "https://hooks.example/T0"}))
    {'webhookUrl': 'https://hooks.example/T0'}
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"streamspace-plugins config secrets v1"


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) keyed by HKDF from the server's secret key.

    HKDF lets operators set any high-entropy string as STREAMSPACE_SECRET_KEY rather than a
    Fernet-formatted key.
    """

    def __init__(self, secret_key: str) -> None:
        # An empty key is one anyone can guess: the values would be encrypted for show only.
        if not secret_key:
            raise ValueError("the secret key (STREAMSPACE_SECRET_KEY) must not be empty")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(values)).decode()

    def decrypt(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            values = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError(
                "secret configuration cannot be decrypted: STREAMSPACE_SECRET_KEY changed"
            ) from None
        if not isinstance(values, dict):
            raise ValueError("secret configuration does not hold an object")
        return values

"""Encryption at rest of secret configuration values."""

import pytest

from runtime.core.secrets import SecretBox

VALUES = {"webhookUrl": "https://hooks.slack.test/T0/B0/XXXX", "apiKey": "sk-live-123"}


def test_encrypted_values_decrypt_to_the_same_values() -> None:
    box = SecretBox("the server's secret key")
    assert box.decrypt(box.encrypt(VALUES)) == VALUES


def test_nothing_stored_decrypts_to_no_values() -> None:
    assert SecretBox("key").decrypt(None) == {}
    assert SecretBox("key").decrypt("") == {}


def test_the_ciphertext_does_not_contain_the_plaintext() -> None:
    token = SecretBox("key").encrypt(VALUES)
    for value in VALUES.values():
        assert value not in token
    assert "sk-live" not in token


def test_a_different_key_cannot_decrypt_and_says_why() -> None:
    token = SecretBox("the first key").encrypt(VALUES)
    with pytest.raises(ValueError, match="cannot be decrypted: STREAMSPACE_SECRET_KEY changed"):
        SecretBox("the second key").decrypt(token)


def test_a_tampered_ciphertext_cannot_be_decrypted() -> None:
    box = SecretBox("key")
    token = box.encrypt(VALUES)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        box.decrypt(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        SecretBox("")

"""The redaction step: a plugin's secret values, in every form a message carries them, and the
credentials and query of any URL, are replaced before text leaves the plugin's code."""

from __future__ import annotations

from urllib.parse import quote

import orjson
import pytest

from runtime.core.redaction import MASK, NO_SECRETS, Redactor, looks_like_token, secret_leaves
from runtime.sdk.hook_runner import stored_result

HOOK = "https://hooks.example.com/services/T0SECRET1/B0SECRET2/XyZsecretTOKEN123"


def test_a_secret_value_is_replaced_wherever_it_appears() -> None:
    redactor = Redactor(["s3cr3t-Token-value"])
    assert redactor.text("login refused for s3cr3t-Token-value (twice: s3cr3t-Token-value)") == (
        f"login refused for {MASK} (twice: {MASK})"
    )


def test_a_secret_url_keeps_its_scheme_and_host_only() -> None:
    redactor = Redactor([HOOK])
    assert redactor.text(f"could not reach {HOOK}: refused") == (
        f"could not reach https://hooks.example.com/{MASK}: refused"
    )


def test_parts_of_a_secret_url_are_replaced_on_their_own() -> None:
    redactor = Redactor([HOOK])
    path = "/services/T0SECRET1/B0SECRET2/XyZsecretTOKEN123"
    for echoed in (path, "XyZsecretTOKEN123", "T0SECRET1", "B0SECRET2"):
        assert echoed not in redactor.text(f"the vendor said: no such hook {echoed}")


def test_query_values_and_credentials_of_a_secret_url_are_replaced_on_their_own() -> None:
    secret = "https://deploy:pa55word@ex.example/triggers/run?sig=AbCdEf0123456789&sv=1.0"
    redactor = Redactor([secret])
    text = redactor.text("signature AbCdEf0123456789 refused; password pa55word refused")
    assert "AbCdEf0123456789" not in text
    assert "pa55word" not in text


def test_url_encoded_and_json_escaped_forms_are_replaced() -> None:
    secret = 'p@ss/"word" 99'
    redactor = Redactor([secret])
    for form in (quote(secret, safe=""), orjson.dumps(secret).decode()[1:-1]):
        assert redactor.text(f"echo: {form}") == f"echo: {MASK}"


def test_matching_ignores_case_so_percent_escapes_in_either_case_match() -> None:
    redactor = Redactor(["a/b c+d=ef"])
    assert redactor.text("got a%2fb%20c%2bd%3def") == f"got {MASK}"


def test_each_long_line_of_a_multi_line_secret_is_replaced() -> None:
    key = "-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    assert "MIIBVwIBADANBgkqhkiG9w0BAQEFAASC" not in Redactor([key]).text(
        "bad line MIIBVwIBADANBgkqhkiG9w0BAQEFAASC"
    )


def test_any_url_loses_its_credentials_and_query_even_without_secrets() -> None:
    text = "GET https://ann:hunter2@git.example/repo.git?token=abc failed; see http://x.test/a"
    assert NO_SECRETS.text(text) == (
        "GET https://***@git.example/repo.git?*** failed; see http://x.test/a"
    )
    assert NO_SECRETS.text("url='https://a.test/p?k=v', next") == "url='https://a.test/p?***', next"


def test_short_values_are_not_searched_for_as_they_would_match_words() -> None:
    assert Redactor(["abc"]).text("abc abcdef") == "abc abcdef"
    assert not Redactor(["abc"]).has_secrets


def test_secret_leaves_are_found_at_any_depth() -> None:
    values = {"a": "one-secret", "b": {"c": ["two-secret", {"d": 123456}]}, "e": True}
    assert sorted(secret_leaves(values)) == ["123456", "one-secret", "two-secret"]
    redactor = Redactor.of_secrets(values)
    assert redactor.text("one-secret two-secret 123456") == f"{MASK} {MASK} {MASK}"


def test_a_value_is_redacted_in_its_strings_and_keys() -> None:
    redactor = Redactor(["one-secret"])
    assert redactor.value({"one-secret": ["x one-secret", 1, None]}) == {
        MASK: [f"x {MASK}", 1, None]
    }


def test_a_result_is_searched_in_one_pass_and_keeps_its_urls_queries() -> None:
    redactor = Redactor(["one-secret"])
    clean = {"link": "https://chat.example/m/1?ts=2", "status": 200}
    assert not redactor.holds_secret(orjson.dumps(clean))
    assert redactor.result(clean) == clean
    echoed = {"echo": "token one-secret", "link": "https://chat.example/m/1?ts=2"}
    assert redactor.holds_secret(orjson.dumps(echoed))
    assert redactor.result(echoed) == {"echo": f"token {MASK}", "link": clean["link"]}


def test_a_secret_needing_json_escapes_is_found_in_the_encoded_result() -> None:
    redactor = Redactor(['quote"d\\secret'])
    assert redactor.holds_secret(orjson.dumps({"x": 'a quote"d\\secret'}))


def test_token_like_parts_are_long_or_hold_a_digit() -> None:
    assert looks_like_token("T0A1B2C3D4")
    assert looks_like_token("x" * 20)
    assert not looks_like_token("services")
    assert not looks_like_token("deploy-bot")


def test_a_successful_result_without_secrets_is_searched_once_and_never_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redactor = Redactor.of_secrets({"webhookUrl": HOOK, "token": "xoxb-1234567890-abcdef"})

    def walked(self: Redactor, value: object) -> object:
        raise AssertionError("a result without secrets was walked")

    monkeypatch.setattr(Redactor, "result", walked)
    clean = {"status": 200, "response": "ok", "items": [{"id": n} for n in range(100)]}
    assert stored_result(clean, redactor) == clean

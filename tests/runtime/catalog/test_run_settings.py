"""Run settings (`concurrency`, `timeoutSeconds`): validated fields of a manifest and of an
installation's override, each bad value named by its path."""

from __future__ import annotations

import math
from typing import Any

import pytest

from runtime.catalog.manifest import manifest_problems, parse_manifest
from runtime.catalog.run_settings import RunLimits, RunSettings, override
from runtime.core.errors import BadUserInput
from runtime.hosting.registry import PluginRegistry, discover_builtins

MINIMAL = {"name": "runner", "version": "1.0.0"}


def problems_of(**extra: Any) -> dict[str, str]:
    return {p.path: p.message for p in manifest_problems({**MINIMAL, **extra})}


@pytest.mark.parametrize("value", ["4x", "4", 4.5, True, [4], {"n": 4}])
def test_a_concurrency_that_is_not_a_whole_number_is_refused_naming_it(value: Any) -> None:
    assert problems_of(concurrency=value) == {"concurrency": "must be a whole number"}


@pytest.mark.parametrize("value", [-1, 0, 257, 10**12])
def test_a_concurrency_outside_1_to_256_is_refused_naming_it(value: int) -> None:
    assert problems_of(concurrency=value) == {"concurrency": "must be from 1 to 256"}


@pytest.mark.parametrize("value", ["10", "10s", True, math.nan, math.inf, [10]])
def test_a_timeout_that_is_not_a_number_is_refused_naming_it(value: Any) -> None:
    assert problems_of(timeoutSeconds=value) == {"timeoutSeconds": "must be a number of seconds"}


@pytest.mark.parametrize("value", [-1, 0, 0.05, 600.5, 3600])
def test_a_timeout_outside_a_tenth_of_a_second_to_ten_minutes_is_refused(value: float) -> None:
    assert problems_of(timeoutSeconds=value) == {
        "timeoutSeconds": "must be from 0.1 to 600 seconds"
    }


def test_both_bad_settings_are_named_in_one_answer() -> None:
    with pytest.raises(BadUserInput) as raised:
        parse_manifest({**MINIMAL, "concurrency": "4x", "timeoutSeconds": -1})
    assert [p.path for p in raised.value.fields] == ["concurrency", "timeoutSeconds"]


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ({}, RunSettings()),
        ({"concurrency": None, "timeoutSeconds": None}, RunSettings()),
        ({"concurrency": 1, "timeoutSeconds": 0.1}, RunSettings(1, 0.1)),
        ({"concurrency": 256, "timeoutSeconds": 600}, RunSettings(256, 600.0)),
    ],
)
def test_settings_within_bounds_or_absent_are_read_from_the_top_level_keys(
    extra: dict[str, Any], wanted: RunSettings
) -> None:
    assert parse_manifest({**MINIMAL, **extra}).run_settings == wanted


def test_the_built_in_manifests_keep_their_top_level_settings() -> None:
    registry = PluginRegistry()
    discover_builtins(registry)
    settings = {spec.name: spec.manifest.run_settings for spec in registry.all()}
    assert settings["streamspace-webhook"] == RunSettings(16, 10.0)
    assert settings["streamspace-email"] == RunSettings(8, 30.0)
    assert len(settings) == 6


def test_in_force_takes_the_installation_then_the_manifest_then_the_defaults() -> None:
    manifest = RunSettings(concurrency=8, timeout_seconds=None)
    assert RunSettings().over(manifest).in_force(4) == RunLimits(8, 10.0)
    assert RunSettings(None, 30).over(manifest).in_force(4) == RunLimits(8, 30.0)
    assert RunSettings(2, None).over(RunSettings()).in_force(4) == RunLimits(2, 10.0)


def test_an_override_keeps_what_is_left_out_and_clears_what_is_null() -> None:
    current = RunSettings(concurrency=2, timeout_seconds=30)
    assert override(current, {}) == current
    assert override(current, {"timeoutSeconds": 5}) == RunSettings(2, 5.0)
    assert override(current, {"concurrency": None}) == RunSettings(None, 30.0)


def test_an_override_names_every_bad_or_unknown_setting() -> None:
    with pytest.raises(BadUserInput) as raised:
        override(RunSettings(), {"concurrency": 0, "timeoutSeconds": 601, "retries": 3})
    assert {p.path: p.message for p in raised.value.fields} == {
        "settings.retries": "is not a setting (known: concurrency, timeoutSeconds)",
        "settings.concurrency": "must be from 1 to 256",
        "settings.timeoutSeconds": "must be from 0.1 to 600 seconds",
    }

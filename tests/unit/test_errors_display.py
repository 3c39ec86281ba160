"""The traceback an error in run(...) is shown with on the command line: the user's frames, or every frame for a bug."""

from __future__ import annotations

import traceback

import pytest

from blowtorch.config import load_config_file, merge_configs
from blowtorch.errors import ConfigError
from blowtorch.sacred_bridge.errors_display import format_failure


def caught(call, *args) -> Exception:
    with pytest.raises(Exception) as info:
        call(*args)
    return info.value


def test_a_blowtorch_error_and_its_cause_show_only_frames_outside_blowtorch(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    error = caught(load_config_file, tmp_path / "bad.yaml")
    assert isinstance(error, ConfigError) and error.__cause__ is not None  # from the YAML parser's error
    text = format_failure(error, traceback.extract_stack())
    assert "blowtorch/" not in text.replace("blowtorch's", "")
    assert "yaml/" in text  # the cause's frames outside blowtorch stay
    assert __file__ in text and "in caught" in text  # the caller's frames, then the error's own
    assert text.count("frames hidden, -d shows them") == 2  # the cause and the error
    assert text.rstrip().endswith(str(error)) and "ConfigError" in text.splitlines()[-1]


def test_an_error_raised_inside_blowtorch_that_is_not_a_blowtorch_error_keeps_every_frame():
    error = caught(merge_configs, [5])  # a bug's stand-in: blowtorch's own code fails
    assert not isinstance(error, ConfigError)
    text = format_failure(error)
    assert "blowtorch/config.py" in text and "frames hidden" not in text

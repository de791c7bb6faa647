"""The exit-code table: one help line per code, unique codes, every error mapped (STYLE 9)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import common
import ledger
import privacy
import protocols
import secagg
from common import errors
from common.errors import FedriskError
from common.exit_codes import EXIT_CODE_HELP, ExitCode


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def fedrisk_errors() -> list[type[FedriskError]]:
    """FedriskError and every subclass defined in the shared packages (common, ledger,
    privacy, secagg, protocols)."""
    for package in (common, ledger, privacy, secagg, protocols):
        for module in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    return sorted({FedriskError} | all_subclasses(FedriskError), key=lambda c: c.__name__)


@pytest.mark.parametrize("code", list(ExitCode.__members__.values()), ids=str)
def test_every_exit_code_has_a_help_line(code: ExitCode) -> None:
    # Execute
    help_line = EXIT_CODE_HELP.get(code, "")
    # Assert: one line, a sentence
    assert help_line.strip(), f"{code!r} has no help line"
    assert "\n" not in help_line and help_line.endswith(".")


def test_help_table_has_no_stray_entries() -> None:
    # Assert
    assert set(EXIT_CODE_HELP) == set(ExitCode.__members__.values())


def test_exit_codes_are_unique_and_fit_a_process_status() -> None:
    # Prepare: aliases (two names, one value) hide in __members__, not in iteration
    values = [int(code) for code in ExitCode.__members__.values()]
    # Assert
    assert len(values) == len(set(values))
    assert all(0 <= value <= 255 for value in values)
    assert ExitCode.SUCCESS == 0 and ExitCode.INTERRUPTED == 130


@pytest.mark.parametrize("error", fedrisk_errors(), ids=lambda c: c.__name__)
def test_every_fedrisk_error_maps_to_a_documented_failure_code(error: type) -> None:
    # Execute
    code = error.exit_code
    # Assert
    assert isinstance(code, ExitCode)
    assert code in EXIT_CODE_HELP
    assert code != ExitCode.SUCCESS
    assert error("boom").advice or error is FedriskError


def test_each_public_error_class_has_its_own_code() -> None:
    # Prepare: the public subclasses; an error sharing a code could not be told apart
    public = [
        obj
        for name in errors.__all__
        if name != "FedriskError" and isinstance(obj := getattr(errors, name), type)
    ]
    # Execute
    codes = [cls.exit_code for cls in public]
    # Assert
    assert len(public) >= 6
    assert len(codes) == len(set(codes))
    assert ExitCode.GENERIC_ERROR not in codes


def test_advice_can_be_overridden_per_instance() -> None:
    # Execute
    default = errors.ConfigError("bad key")
    custom = errors.ConfigError("bad key", advice="Edit line 3.")
    # Assert
    assert default.advice.startswith("Fix the named key")
    assert custom.advice == "Edit line 3."
    assert errors.ConfigError.advice == default.advice

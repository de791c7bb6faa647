"""Strict loading of YAML configuration into frozen pydantic models.

YAML is read only through ``yaml.safe_load``. Unknown keys, wrong types and missing
keys are errors that name the key path and the file (STYLE.md item 7).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import ConfigError, permission_denied

__all__ = ["StrictModel", "load_yaml_model", "parse_model", "format_validation_error"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config records: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(
    err: ValidationError, source: str, model: type[BaseModel] | None = None
) -> str:
    """One line per problem: ``source: key.path: message``; an unknown key of ``model``
    names the known key it is closest to (a typo such as ``privacy.epsilom``)."""
    lines = []
    for problem in err.errors():
        loc = tuple(problem["loc"])
        where = ".".join(str(part) for part in loc) or "<top level>"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
            near = _closest_key(model, loc)
            if near is not None:
                message += f"; did you mean {near!r}?"
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def _closest_key(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str | None:
    """The known key nearest to the unknown last part of ``loc`` (None if none is close)."""
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = _model_of(model.model_fields[part].annotation)
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    known = [name for name in model.model_fields if not name.startswith("_")]
    matches = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (itself, or inside Optional/Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def parse_model(model: type[M], data: Any, source: str) -> M:
    """Validate ``data`` as ``model``; raise ConfigError naming ``source`` and the keys."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, model)) from None


def load_yaml_model(model: type[M], path: Path) -> M:
    """Read ``path`` with ``yaml.safe_load`` and validate it strictly as ``model``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except PermissionError:
        raise permission_denied(path, "read") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}"
        ) from None
    return parse_model(model, data if data is not None else {}, str(path))

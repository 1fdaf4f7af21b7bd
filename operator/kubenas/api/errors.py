"""Readable errors for bad manifests: each line names the field and the rule."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SpecError(ValueError):
    """An invalid experiment spec; str() is one line per problem, e.g. 'spec.budget.maxTrials: ...'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for item in error.errors():
        parts = [prefix] if prefix else []
        parts += [_segment(p) for p in item["loc"]]
        path = ".".join(parts).replace(".[", "[")
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {message}" if path else message)
    return problems


def _segment(part: int | str) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def parse_model(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate data into model, raising SpecError with field-named messages."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, prefix)) from None

"""Which config fields a sweep or a search may vary: the training sections' fields, never where a run executes
(`runtime.*`) nor which file it reads (`data.path`). Apart from `engine.sweeps` so that `engine.search_space`,
which `engine.sweeps` re-exports, can use it without an import circle."""

from __future__ import annotations

from pydantic import BaseModel

from engine.config import RunConfig

SWEPT_SECTIONS = ("data", "model", "loss", "optim", "schedule", "guard")
NEVER_SWEPT = ("data.path",)


def sweepable_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """The dotted paths a sweep may vary, in the schema's order: every field of the training sections but
    data.path."""
    found = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if not prefix and name not in SWEPT_SECTIONS:
            continue
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            found.extend(sweepable_fields(nested, f"{path}."))
        elif path not in NEVER_SWEPT:
            found.append(path)
    return found

"""`ScriptJob`: a run whose job is the researcher's own command (`python -m engine launch -- python train.py …`),
stored in the run's config beside a `kind: script` marker, so every place that reads a stored config can tell it
from a preset's `RunConfig` (`is_script`). No torch here: the app's New-run page builds one too.

The command is an argv list, never a shell line; it runs in a working folder under the one root runs may run code
from ($LAB_CODE_DIR, else the current folder), refused outside it as `data.path` is outside the data root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator

from engine.config import ConfigError, Problem, RuntimeConfig, Section

SCRIPT_KIND = "script"
MAX_ARGUMENTS = 256
MAX_ARGUMENT_CHARS = 4096
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# what the worker sets for the script itself: a run cannot hand itself another run's token or notebook
RESERVED_ENV = ("LAB_NOTEBOOK_URL", "LAB_RUN_ID", "LAB_ATTEMPT", "LAB_ATTEMPT_TOKEN", "TENSORBOARD_LOGDIR")


def code_root() -> Path:
    """The one folder script runs may run in: $LAB_CODE_DIR, else the current folder."""
    return Path(os.environ.get("LAB_CODE_DIR") or ".").resolve()


def resolve_workdir(path: str) -> Path:
    """`path` (relative to the code root, or absolute) as a real folder inside it; ValueError naming `workdir`
    otherwise, so a run cannot run code from anywhere the server's user can read."""
    root = code_root()
    resolved = (root / path).resolve()  # follows symbolic links: one leading out of the root is refused too
    if not resolved.is_relative_to(root):
        raise ValueError(f"workdir: '{path}' is outside the code folder {root} ($LAB_CODE_DIR); put the code there "
                         "or point LAB_CODE_DIR at its parent")
    if not resolved.is_dir():
        raise ValueError(f"workdir: '{path}' is not a folder in the code folder {root}")
    return resolved


class ScriptJob(Section):
    """A command the worker runs as a run: argv, working folder, extra environment, TensorBoard logdir, and
    where it runs (`runtime`: executor local or slurm, processes, Slurm settings, host and GPU pins)."""

    kind: Literal["script"] = "script"  # marks a script run's config (SCRIPT_KIND)
    command: list[str] = Field(..., min_length=1, max_length=MAX_ARGUMENTS, description=(
        "The command as an argument list, e.g. python train.py --lr 0.1 (never run through a shell)"))
    workdir: str = Field(".", max_length=1000, description=(
        "Working folder, relative to the code folder ($LAB_CODE_DIR) or absolute inside it"))
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the script")
    tensorboard: str | None = Field(None, max_length=1000, description=(
        "TensorBoard logdir the script writes (TENSORBOARD_LOGDIR); relative to the working folder; empty = a "
        "folder in the run's artifact folder"))
    runtime: RuntimeConfig = Field(default_factory=lambda: RuntimeConfig.model_validate({}), description="Where it runs")

    @field_validator("command")
    @classmethod
    def _arguments_are_text(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError("the program (its first word) is empty")
        for index, argument in enumerate(argv):
            if len(argument) > MAX_ARGUMENT_CHARS or "\x00" in argument:
                raise ValueError(f"argument {index} holds a NUL or is longer than "
                                 f"{MAX_ARGUMENT_CHARS} characters")
        return argv

    @field_validator("env")
    @classmethod
    def _names_are_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name[:40]!r} is not a variable name (letters, digits, _; not a digit first)")
            if name in RESERVED_ENV:
                raise ValueError(f"{name} is set by the worker for each attempt; it cannot be given")
            if "\x00" in value or len(value) > MAX_ARGUMENT_CHARS:
                raise ValueError(f"the value of {name} holds a NUL or is longer than {MAX_ARGUMENT_CHARS} "
                                 "characters")
        return env

    @model_validator(mode="after")
    def _folder_is_under_the_root(self) -> "ScriptJob":
        resolve_workdir(self.workdir)
        if self.runtime.nodes != 1 and self.runtime.executor != "slurm":
            raise ValueError("runtime.nodes: more than one node needs executor slurm")
        return self

    def folder(self) -> Path:
        """The working folder, resolved (it validated, so it is under the code root)."""
        return resolve_workdir(self.workdir)

    def logdir(self, run_folder: Path) -> Path:
        """The TensorBoard logdir: the one named (relative to the working folder), else run_folder/tensorboard."""
        if self.tensorboard:
            return (self.folder() / self.tensorboard).resolve()
        return run_folder / "tensorboard"


def is_script(config: Mapping[str, Any]) -> bool:
    """Whether a stored config is a script run's (a preset run's has no `kind`)."""
    return config.get("kind") == SCRIPT_KIND


def validate_script(values: Mapping[str, Any]) -> ScriptJob:
    """A ScriptJob from plain values, or ConfigError naming each field at fault."""
    try:
        return ScriptJob.model_validate(dict(values))
    except ValidationError as error:
        raise ConfigError.from_validation_error(error) from None


def parse_env(lines: list[str]) -> dict[str, str]:
    """["NAME=value", …] (the CLI's --env, the page's lines) -> a dict; ConfigError naming the line at fault."""
    env: dict[str, str] = {}
    for index, line in enumerate(lines):
        name, equals, value = line.partition("=")
        if not equals:
            raise ConfigError([Problem(f"env.{index}", f"'{line[:40]}' is not NAME=value")])
        env[name.strip()] = value
    return env


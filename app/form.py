"""The run form, generated from RunConfig's schema: a widget per field, grouped by section, with the field's
bounds and description as help. A new config field appears here without page code."""

from __future__ import annotations

import shlex
import shutil
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import annotated_types
import streamlit as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.literal import literal
from engine.config import (ConfigError, Problem, RunConfig, data_choices, data_root, label_in_words,  # noqa: F401
                           validate_config)
from engine.lint import lint


@dataclass(frozen=True)
class FieldSpec:
    path: str
    annotation: Any
    info: FieldInfo


def _model_type(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def leaf_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> Iterator[FieldSpec]:
    for name, info in model.model_fields.items():
        nested = _model_type(info.annotation)
        if nested is not None:
            yield from leaf_fields(nested, f"{prefix}{name}.")
        else:
            yield FieldSpec(f"{prefix}{name}", info.annotation, info)


def bounds_text(info: FieldInfo) -> str:
    words = []
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                words.append(f"{sign} {getattr(item, attr):g}")
    return ", ".join(words)


MISSING = object()


def _get(values: dict[str, Any], path: str) -> Any:
    """The value at `path`, or MISSING when a stored config predates the field."""
    node: Any = values
    for key in path.split("."):
        node = node.get(key, MISSING) if isinstance(node, dict) else MISSING
    return node


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0]
    return False, annotation


def _subsection_title(section: str, group: str) -> str:
    """`model`, `decoders.first` -> "decoders · first — Decoder A": the sub-section and its description."""
    info = RunConfig.model_fields[section]
    node = _model_type(info.annotation)
    for part in group.split("."):
        info = node.model_fields[part]
        node = _model_type(info.annotation) or node
    return f"{group.replace('.', ' · ')} — {info.description}" if info.description else group


def _widget(spec: FieldSpec, current: Any, key: str) -> Any:
    """One input for one field; numbers are typed freely so that validation (not the widget) names bad ones."""
    label = label_in_words(spec.path)
    bounds = bounds_text(spec.info)
    help_text = ((spec.info.description or "") + (f" (range {bounds})" if bounds else "")
                 + f" — field `{spec.path}`")
    optional, annotation = _is_optional(spec.annotation)
    if spec.path == "data.path":  # only what the data folder holds can be chosen
        options = [None, *data_choices()]
        if current not in options:
            options.append(current)  # a cloned run's path: shown, and validation says if it is not allowed
        return st.selectbox(label, options, index=options.index(current), key=key,
                            help=f"{help_text} — found in {data_root()}",
                            format_func=lambda o: "(none)" if o is None else o)
    if typing.get_origin(annotation) is Literal:
        options = list(typing.get_args(annotation))
        return st.selectbox(label, options, index=options.index(current) if current in options else 0, key=key,
                            help=help_text)
    if typing.get_origin(annotation) is list:  # e.g. extra sbatch flags: typed as one line, split like a shell
        text = st.text_input(label, value=shlex.join(current or []), key=key, help=help_text + " (space-separated)")
        try:
            return shlex.split(text)
        except ValueError:
            return text  # an unclosed quote: validation names the field
    if annotation is bool:
        return st.checkbox(label, value=bool(current), key=key, help=help_text)
    if annotation in (int, float) and not optional:
        if annotation is int:
            return int(st.number_input(label, value=int(current), step=1, key=key, help=help_text))
        return float(st.number_input(label, value=float(current), key=key, help=help_text, format="%g"))
    text = st.text_input(label, value="" if current is None else str(current), key=key,
                         help=help_text + (" (empty = none)" if optional else ""))
    if optional and not text.strip():
        return None
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            return text  # validation names the field
    return text


def _section_description(section: str) -> str:
    return RunConfig.model_fields[section].description or section


def _render_fields(specs: list[FieldSpec], values: dict[str, Any], *, key_prefix: str, edited: dict[str, Any],
                   slots: dict[str, Any], heading: Callable[[str, str], str]) -> None:
    """`specs` three to a row, one sub-header (`heading(section, group)`) per sub-section, an empty slot under
    each field for its validation message; each widget's value goes into `edited` at its path."""
    groups: dict[tuple[str, str], list[FieldSpec]] = {}
    for spec in specs:
        parts = spec.path.split(".")
        groups.setdefault((parts[0], ".".join(parts[1:-1])), []).append(spec)
    for (section, group), members in groups.items():
        title = heading(section, group)
        if title:  # one sub-header per sub-section, not its name over every field
            st.markdown(f"**{title}**")
        columns = st.columns(3)
        for i, spec in enumerate(members):
            with columns[i % 3]:
                current = _get(values, spec.path)
                if current is MISSING:  # a run cloned from before this field existed: its default
                    current = spec.info.get_default(call_default_factory=True)
                _set(edited, spec.path, _widget(spec, current, f"{key_prefix}:{spec.path}"))
                slots[spec.path] = st.empty()


SLURM_FIELDS = ("runtime.executor", "runtime.slurm.")


def _hidden(path: str, values: dict[str, Any]) -> bool:
    """Slurm's fields, where this host cannot submit to Slurm (no `sbatch` on the PATH) and the config does not
    use it: a choice that could only fail. Hidden fields keep their defaults."""
    return (path.startswith(SLURM_FIELDS) and shutil.which("sbatch") is None
            and _get(values, "runtime.executor") != "slurm")


OPEN_SECTIONS = ("data", "model", "loss", "optim")  # open when nothing is shown first


def config_form(values: dict[str, Any], *, key_prefix: str, first: Sequence[str] = (),
                first_heading: str = "What this experiment sets") -> tuple[dict[str, Any], RunConfig | None,
                                                                              list[Problem], list[Problem]]:
    """Render the form starting from `values`; returns (edited values, config or None, errors, lint warnings).
    The fields named in `first` (dotted paths, e.g. what a preset sets) come first under `first_heading`, and
    then every section is folded; without them the main sections are open. Errors and warnings are shown under
    the field they name."""
    edited: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    shown = [spec for spec in leaf_fields() if not _hidden(spec.path, values)]
    leading = [spec for spec in shown if spec.path in set(first)]
    if leading:
        st.subheader(first_heading)
        st.caption(f"The {len(leading)} field(s) that differ from the defaults; every other field is at its "
                   "default, folded in the sections below.")
        _render_fields(leading, values, key_prefix=key_prefix, edited=edited, slots=slots,
                       heading=lambda section, group: _section_description(section)
                       + (f" · {_subsection_title(section, group)}" if group else ""))
    sections: dict[str, list[FieldSpec]] = {}
    for spec in shown:
        if spec.path not in slots:
            sections.setdefault(spec.path.split(".")[0], []).append(spec)
    for section, specs in sections.items():
        with st.expander(f"{section} — {_section_description(section)}",
                         expanded=not leading and section in OPEN_SECTIONS):
            _render_fields(specs, values, key_prefix=key_prefix, edited=edited, slots=slots,
                           heading=lambda section, group: _subsection_title(section, group) if group else "")
    try:
        cfg = validate_config(edited)
        errors: list[Problem] = []
    except ConfigError as error:
        cfg, errors = None, error.problems
    warnings = lint(cfg) if cfg else []
    unplaced = []
    for problem in errors + warnings:
        slot = slots.get(problem.path)
        show = st.error if problem in errors else st.warning
        if slot is None:
            unplaced.append((show, problem))
        else:
            with slot.container():
                show(f"**{literal(problem.path)}**: {literal(problem.message)}")
    for show, problem in unplaced:
        show(f"**{literal(problem.path)}**: {literal(problem.message)}")
    return edited, cfg, errors, warnings

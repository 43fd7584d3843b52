"""Issue #22, part 1: a newline in a Slurm setting was a shell on the cluster. submitit writes
`#SBATCH --account=<shlex-quoted value>`; quoting does not survive a line break, so the line after it ran in bash on
the compute node. Each way in (the form, its Sweep section, `engine sweep`, `engine submit`) now refuses the exact
attack, naming the field, and queues nothing; no string of any config field reaches a batch script as more than
one line."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from engine import cli
from engine.config import ConfigError, RunConfig, validate_config, with_overrides
from engine.presets import PRESETS
from engine.launchers.slurm import SlurmLauncher, slurm_executor
from engine.safe_strings import sbatch_flag
from engine.sweeps import expand, sweepable_fields
from tests.app.conftest import served_on_loopback  # noqa: F401 - autouse fixture: AppTest serves on loopback
from tests.app.conftest import notebook, page  # noqa: F401 - the app tests' notebook fixture and page driver
from tests.helpers import claimed

# The attack as typed after `--set` or into a JSON-reading field: `\n` becomes a real newline, and `\''`
# gets the value past sbatch's unmatched-quote check.
ATTACK_JSON = '"lab\\\\\'\'\\ntouch PWNED #"'
ATTACK = json.loads(ATTACK_JSON)
SLURM = ["runtime.executor=slurm"]


def batch_script(cfg: RunConfig, folder: Path) -> str:
    """The batch script sbatch would be given for `cfg`: what `SlurmLauncher.start` builds, without submitting."""
    return slurm_executor(cfg, folder, 1)._executor._make_submission_file_text("true", "check")


def parameter_lines(script: str) -> list[str]:
    """The lines between submitit's '# Parameters' and the blank line that ends them."""
    lines = script.split("\n")
    start = lines.index("# Parameters") + 1
    return lines[start:lines.index("", start)]


def test_the_attack_would_have_put_its_own_line_in_the_batch_script(tmp_path):
    """What the checks stop: the same value, let through unchecked, is a line bash runs."""
    base = with_overrides(PRESETS["tiny"], SLURM)
    unchecked = base.model_copy(update={"runtime": base.runtime.model_copy(update={
        "slurm": base.runtime.slurm.model_copy(update={"account": ATTACK})})})
    lines = batch_script(unchecked, tmp_path).split("\n")
    assert "touch PWNED #'" in lines  # the shlex-quoted value's second half, alone on its own line
    assert "touch PWNED #'" not in parameter_lines(batch_script(base, tmp_path))


def test_the_cli_refuses_the_account_newline_and_queues_nothing(notebook, capsys):
    code = cli.main(["submit", "--preset", "tiny", "--db", notebook.url, "--set", "runtime.executor=slurm",
                     "--set", f"runtime.slurm.account={ATTACK_JSON}"])
    said = capsys.readouterr()
    assert code == 2 and said.out == ""
    assert "runtime.slurm.account: contains a newline (U+000A)" in said.err and "Traceback" not in said.err
    assert notebook.list_runs() == []


def test_a_run_queued_before_the_check_is_failed_at_start_and_never_submitted(notebook, tmp_path):
    """The store takes plain dicts: a run queued by an older version still holds the attack. The launcher
    validates before it builds a job, and the worker fails the run with this message (an OSError)."""
    values = with_overrides(PRESETS["tiny"], SLURM).model_dump(mode="json")
    values["runtime"]["slurm"]["account"] = ATTACK
    run_id = notebook.create_run(values, name="queued long ago", preset="tiny")
    with pytest.raises(OSError, match=r"its config does not validate: runtime.slurm.account: contains a newline"):
        SlurmLauncher(notebook).start(claimed(notebook, run_id), url=notebook.url, runs_dir=tmp_path, env={},
                                      log=tmp_path / "output.log")
    assert not (tmp_path / str(run_id) / "slurm").exists()  # no batch script was written
    assert notebook.snapshots(run_id, "slurm") == []  # and no job recorded


def test_the_cli_sweep_refuses_runtime_fields_and_queues_nothing(notebook, capsys):
    code = cli.main(["sweep", "--preset", "tiny", "--db", notebook.url, "--set", "runtime.executor=slurm",
                     "--grid", f"runtime.slurm.account={ATTACK_JSON}"])
    said = capsys.readouterr()
    assert code == 2 and "runtime.slurm.account: not a field a sweep may vary" in said.err
    assert notebook.list_runs() == [] and notebook.list_sweeps() == []


@pytest.mark.parametrize("path", ["runtime.slurm.account", "runtime.slurm.partition", "runtime.slurm.extra_flags",
                                  "runtime.host", "runtime.executor", "data.path"])
def test_the_sweep_function_refuses_every_runtime_field_and_data_path(path):
    with pytest.raises(ConfigError) as refused:
        expand(with_overrides(PRESETS["tiny"], SLURM), {path: [ATTACK, "lab"]})
    assert [p.path for p in refused.value.problems] == [path]
    assert "not a field a sweep may vary" in str(refused.value)
    assert not any(f.startswith("runtime.") or f == "data.path" for f in sweepable_fields())
    assert "optim.lr" in sweepable_fields() and "data.image_size" in sweepable_fields()


def slurm_form(monkeypatch) -> Any:
    """The New-run page on a host that can reach sbatch (so the Slurm fields show), executor set to slurm."""
    import app.form

    monkeypatch.setattr(app.form.shutil, "which", lambda name: "/usr/bin/sbatch")
    form = page("new_run")
    form.selectbox(key="tiny:runtime.executor").set_value("slurm").run()
    return form


def test_the_form_refuses_the_account_newline_before_launch(notebook, monkeypatch):
    form = slurm_form(monkeypatch)
    form.text_input(key="tiny:runtime.slurm.account").set_value(ATTACK).run()
    errors = " ".join(e.value for e in form.error)
    assert "**runtime.slurm.account**: contains a newline (U+000A)" in errors
    assert form.button[-1].label == "🚀 Launch" and form.button[-1].disabled
    assert notebook.list_runs() == []


def test_the_form_refuses_a_quoted_newline_in_the_extra_flags(notebook, monkeypatch):
    """The flags box is split like a shell line: quotes keep a newline inside one flag."""
    form = slurm_form(monkeypatch)
    form.text_input(key="tiny:runtime.slurm.extra_flags").set_value("--qos='high\n'").run()
    assert "**runtime.slurm.extra_flags**: contains a newline" in " ".join(e.value for e in form.error)
    assert form.button[-1].disabled
    assert notebook.list_runs() == []


def test_the_forms_sweep_section_offers_no_runtime_field(notebook, monkeypatch):
    form = slurm_form(monkeypatch)
    offered = form.selectbox(key="sweep-field0:tiny").options
    assert "optim.lr" in offered and "data.seed" in offered
    assert not [o for o in offered if o.startswith("runtime.") or o == "data.path"]


@pytest.mark.parametrize("flag", ["--qos=high\n", "--qos=high\ntouch PWNED", "--comment=a\rb", "--qos=hi\x00gh"])
def test_a_trailing_newline_flag_is_refused_by_the_flag_check_and_by_the_config(flag):
    """`^…$` matched before a trailing newline; the flag is now matched whole, and the config refuses any newline."""
    with pytest.raises(ValueError, match="is not one sbatch flag"):
        sbatch_flag(flag)
    with pytest.raises(ConfigError) as refused:
        validate_config({"runtime": {"executor": "slurm", "slurm": {"extra_flags": ["--exclusive", flag]}}})
    assert [p.path for p in refused.value.problems] == ["runtime.slurm.extra_flags"]


@pytest.mark.parametrize("field, value, words", [
    ("partition", "gpu;touch x", "is not a Slurm name"), ("account", "-lab", "is not a Slurm name"),
    ("account", "lab,other", "is not a Slurm name"), ("extra_flags", ["--qos=high;x"], "is not a Slurm name"),
    ("extra_flags", ["--export=ALL,LD_PRELOAD=/tmp/x.so"], "changes what the job runs"),
    ("extra_flags", ["--chdir=/tmp"], "changes what the job runs"),
    ("extra_flags", ["--comment=$(touch x)"], "is not one sbatch flag"),
    ("extra_flags", ["--account=other"], "is set from the other fields"),
])
def test_slurm_settings_are_held_to_what_slurm_accepts(field, value, words):
    with pytest.raises(ConfigError, match=words) as refused:
        validate_config({"runtime": {"executor": "slurm", "slurm": {field: value}}})
    assert [p.path for p in refused.value.problems] == [f"runtime.slurm.{field}"]


def test_plain_slurm_settings_still_reach_the_batch_script(tmp_path):
    cfg = with_overrides(PRESETS["tiny"], [*SLURM, "runtime.slurm.partition=gpu,gpu-a100",
                                           "runtime.slurm.account=lab_2.x",
                                           'runtime.slurm.extra_flags=["--qos=high", "--exclusive", '
                                           '"--begin=now+1day", "--constraint=a100|h100"]'])
    lines = parameter_lines(batch_script(cfg, tmp_path))
    for line in ("#SBATCH --partition=gpu,gpu-a100", "#SBATCH --account=lab_2.x", "#SBATCH --qos=high",
                 "#SBATCH --exclusive", "#SBATCH --begin=now+1day", "#SBATCH --constraint='a100|h100'"):
        assert line in lines


# --- every string field, any string ------------------------------------------------------------------------------


def string_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, bool]]:
    """(dotted path, takes a list) for every field of RunConfig that holds text: str, str | None, list[str] and
    Literal choices of strings."""
    found = []
    for name, info in model.model_fields.items():
        annotation, path = info.annotation, f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(string_fields(annotation, f"{path}."))
            continue
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is list and args == (str,):
            found.append((path, True))
        elif annotation is str or str in args or (typing.get_origin(annotation) is Literal
                                                  and all(isinstance(a, str) for a in args)):
            found.append((path, False))
    return found


STRING_FIELDS = string_fields()
TEXT = st.one_of(st.text(max_size=40),  # any code point but surrogates: printable, controls, separators
                 st.text(alphabet="ab-=_.,;:'\"\\$`# \t\n\r\x00\x0b\x0c\x1b\x85\u2028", max_size=20),
                 st.sampled_from([ATTACK, "--qos=high\n", "gpu\n", "lab\r\ntouch x", "slurm", "learnable", "."]))


def test_the_walk_finds_the_slurm_and_host_strings():
    paths = [p for p, _ in STRING_FIELDS]
    for path in ("runtime.slurm.partition", "runtime.slurm.account", "runtime.slurm.extra_flags", "runtime.host",
                 "runtime.gpu_kind", "data.path", "runtime.executor"):
        assert path in paths


@pytest.mark.parametrize("path, many", STRING_FIELDS, ids=[p for p, _ in STRING_FIELDS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_any_string_in_any_field_validates_or_is_refused_naming_it_and_never_splits_a_batch_line(
        path, many, text, tmp_path):
    values = with_overrides(PRESETS["tiny"], SLURM).model_dump(mode="json")
    node = values
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = [text] if many else text
    try:
        cfg = validate_config(values)
    except ConfigError as error:
        assert path in [p.path for p in error.problems], error.problems
        return
    assert not any(c in text for c in "\n\r\x00\x85\u2028\u2029")
    cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"executor": "slurm"})})
    script = batch_script(cfg, tmp_path).split("\n")
    parameters = parameter_lines("\n".join(script))
    assert script[:3] == ["#!/bin/bash", "", "# Parameters"]
    assert all(line.startswith("#SBATCH --") for line in parameters), parameters
    tail = script[3 + len(parameters):]  # nothing but submitit's own command block after the #SBATCH lines
    assert tail[:3] == ["", "# command", "export SUBMITIT_EXECUTOR=slurm"] and tail[4:] == [""], tail
    assert tail[3].startswith("srun --unbuffered ") and tail[3].endswith(" true")

"""What a config string may hold where it goes: a batch script, a command line, an environment variable.

Quoting does not survive a line break: submitit writes `#SBATCH --account=<shlex-quoted value>`, and a newline
inside the value starts a new line of the batch script, which bash runs. So every config string is refused if it
holds any control character (newline, carriage return, NUL, tab, escape…) or a Unicode line separator, and the
Slurm settings are held to what Slurm itself accepts: names for partition, account and QOS, whole
`--name[=value]` flags (matched with `re.fullmatch`: `$` would also match before a trailing newline).
No torch, no pydantic: plain checks that raise ValueError with a sentence.
"""

from __future__ import annotations

import re
import unicodedata

# Besides the C0/C1 controls (category Cc): the separators Python's splitlines (and some terminals) break at.
LINE_SEPARATORS = {"\u2028", "\u2029"}
# Slurm's own name characters (partition, account, QOS): letters, digits, '_', '.', '-', not starting with '-'
# (it would read as an option on a command line).
SLURM_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
SLURM_NAME_LIST = re.compile(rf"{SLURM_NAME.pattern}(,{SLURM_NAME.pattern})*")
# One sbatch flag, whole: --name or --name=value; the value printable ASCII without blanks, quotes, backslash,
# backtick or '$' (a value that needs them needs a shell, and a batch script line is read by one).
SBATCH_FLAG = re.compile(r"--[a-z][a-z0-9-]*(=[!#%&(-\[\]-_a-~]+)?")
# What the executor itself sets from other fields: a flag here would contradict them.
SBATCH_FLAGS_OWNED = ("--nodes", "--ntasks-per-node", "--ntasks", "--time", "--partition", "--account",
                      "--gpus-per-task", "--cpus-per-task", "--signal", "--output", "--error", "--job-name")
# Flags that change what the job runs, where, or with which environment: not a resource request, never from a form.
SBATCH_FLAGS_REFUSED = ("--export", "--export-file", "--chdir", "--wrap", "--get-user-env", "--uid", "--gid",
                        "--container", "--container-id", "--bb", "--bbf", "--burst-buffer", "--input",
                        "--open-mode", "--parsable", "--wait", "--test-only")
# Flags whose value is a Slurm name (list): held to the name characters, as partition and account are.
SBATCH_NAME_FLAGS = ("--qos", "--reservation", "--wckey", "--clusters", "--cluster")


def control_character_in(text: str) -> str | None:
    """The first control character or line separator in `text`, named (e.g. "a newline (U+000A)"); else None."""
    for char in text:
        if char in LINE_SEPARATORS or unicodedata.category(char) == "Cc":
            name = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL", "\t": "a tab"}.get(char)
            return f"{name or 'a control character'} (U+{ord(char):04X})"
    return None


def refuse_control_characters(value: object) -> object:
    """`value` unchanged, or ValueError when it is a string (or a list of strings) holding a control character:
    a line break would end a batch script's line, a command line's item or an environment variable's value."""
    for text in value if isinstance(value, list) else [value]:
        found = control_character_in(text) if isinstance(text, str) else None
        if found:
            raise ValueError(f"contains {found}; a config string is one line of printable text")
    return value


def slurm_name(value: str | None, *, many: bool = False) -> str | None:
    """`value` when it is a Slurm name (or, with `many`, a comma-separated list of them); ValueError otherwise."""
    if value is None or value == "":
        return None if value is None else value
    if not (SLURM_NAME_LIST if many else SLURM_NAME).fullmatch(value):
        raise ValueError(f"{value!r} is not a Slurm name: letters, digits, '_', '.' and '-' only"
                         + (", names separated by commas" if many else ""))
    return value


def sbatch_flag(flag: str) -> str:
    """`flag` when it is one plain sbatch flag this app may pass on; ValueError saying why not otherwise."""
    if not isinstance(flag, str) or not SBATCH_FLAG.fullmatch(flag):
        raise ValueError(f"{flag!r} is not one sbatch flag of the form --name or --name=value (printable, no "
                         "blanks, quotes, backslash, backtick or '$')")
    name, _, value = flag.partition("=")
    if name in SBATCH_FLAGS_OWNED:
        raise ValueError(f"{name} is set from the other fields (runtime.processes, runtime.nodes, "
                         "runtime.slurm.*); set it there")
    if name in SBATCH_FLAGS_REFUSED:
        raise ValueError(f"{name} changes what the job runs or its environment, not what it is given; it is not "
                         "accepted here")
    if name in SBATCH_NAME_FLAGS and value:
        slurm_name(value, many=True)
    return flag

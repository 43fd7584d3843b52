"""The original journal, reproduced: which imported entries a preset mirrors, and, beside each, the latest finished
run of that preset with its draft's figures, captioned as reproductions so that none is ever taken for the
original's own (missing) picture."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from app.literal import literal, literal_code
from app.widgets import show_image
from engine.presets import PRESET_INFO
from lab_notes import FINAL_STATUSES, Note, Notebook, Run

# The original journal's own words that open the passage each preset mirrors (journal/original-journal.md): with
# the preset's journal date they say which imported entry, and where in it, the preset's runs belong. The
# different-targets preset is not the journal's experiment, so it reproduces no passage.
ORIGINAL_LINES: dict[str, str] = {
    "2022-12-08-disc-vit1": "disc + ViT-1",
    "2022-12-08-vit1": "只有ViT-1",
    "2022-12-14-negatives-infonce-diverges": "第3999个episodes开始出现损失计算为nan",
    "2022-12-14-normalized-infonce-2d": "现在把损失改回来",
    "2022-12-14-vit6-1d-no-accuracy": "ViT改为6层",
    "2022-12-14-vit6-1d-disc": "再上面实验的基础上加了discriminator",
    "2023-01-12-vit-ae-shared-decoders": "AE结构换成了VIT，decoder共享权重",
    "2023-01-12-vit-ae-separate-decoders": "AE结构换成了VIT，decoder不共享权重",
}
LATEST_OF_A_PRESET = 50  # finished runs looked at per preset: newest first, a search by name can match others


@dataclass(frozen=True)
class Mirrored:
    """A preset whose passage starts at `offset` characters into an original entry's body."""

    preset: str
    offset: int


def journal_day(preset: str) -> dt.date | None:
    """The day of the journal entry `preset` mirrors, from its journal date ("2022.12.08")."""
    info = PRESET_INFO.get(preset)
    if info is None or not info.journal_date:
        return None
    return dt.datetime.strptime(info.journal_date, "%Y.%m.%d").date()


def mirrored_in(note: Note) -> list[Mirrored]:
    """The presets whose passage this note holds, in the order of the text: a note of the same date whose body
    has, at the start of a line, the original's words for the preset (so a person's own note of that day with
    other words is not taken for the original)."""
    found = []
    for preset, line in ORIGINAL_LINES.items():
        if note.entry_date is None or journal_day(preset) != note.entry_date:
            continue
        offset = _line_start(note.body, line)
        if offset is not None:
            found.append(Mirrored(preset, offset))
    return sorted(found, key=lambda m: m.offset)


def _line_start(body: str, line: str) -> int | None:
    if body.startswith(line):
        return 0
    at = body.find("\n" + line)
    return at + 1 if at >= 0 else None


def passages(body: str, mirrored: list[Mirrored]) -> tuple[str, list[tuple[Mirrored, str]]]:
    """The body's text before the first mirrored passage, and each mirrored passage's text (up to the next)."""
    ends = [m.offset for m in mirrored[1:]] + [len(body)]
    return body[:mirrored[0].offset], [(m, body[m.offset:end]) for m, end in zip(mirrored, ends)]


def latest_finished_run(notebook: Notebook, preset: str) -> Run | None:
    """The preset's run that ended last (completed, stopped, diverged or failed; deleted ones are not looked at)."""
    page = notebook.runs_page(status=list(FINAL_STATUSES), search=preset, limit=LATEST_OF_A_PRESET)
    runs = [s.run for s in page.summaries if s.run.preset == preset]
    ended = [r for r in runs if r.ended_at is not None]
    return max(ended, key=lambda r: (r.ended_at, r.id)) if ended else (runs[0] if runs else None)


def draft_of_run(notebook: Notebook, run_id: int) -> Note | None:
    """The entry the notebook wrote for the run (accepted or still waiting; edits and all), the newest first: the
    figures of the run are in it."""
    written = [n for n in notebook.list_notes(run_id) if notebook.draft_of(n.id) is not None]
    return max(written, key=lambda n: n.id) if written else None


def ended_on(run: Run) -> str:
    """The day the run ended, in the server's time zone, as the journal writes dates."""
    when = run.ended_at or run.created_at
    return f"{when.astimezone():%Y.%m.%d}"


def show_reproduction(notebook: Notebook, preset: str) -> None:
    """A framed panel, plainly labelled as a reproduction: the preset's latest finished run, a link to it, and its
    draft's figures captioned "reproduced by run N on DATE"; or how to make one."""
    with st.container(border=True):
        st.markdown(f"**🔁 Reproduction** · preset {literal_code(preset)}")
        run = latest_finished_run(notebook, preset)
        if run is None:
            st.caption(f"Not reproduced yet: no finished run of this preset. "
                       f"[Open its form](/new?preset={preset}) or launch it from Home.")
            return
        day = ended_on(run)
        st.markdown(f"[Run {run.id} · {literal(run.name)}](/run?run={run.id}) — {run.status}, ended {day}")
        draft = draft_of_run(notebook, run.id)
        pictures = [(f.image, f.caption or f.name) for f in (draft.figures if draft else []) if f.image is not None]
        if not pictures:
            st.caption(f"Run {run.id} has no entry with figures (its draft was discarded, or not written yet).")
        for image, what in pictures:
            show_image(image, caption=f"reproduced by run {run.id} on {day} — {literal(what)}", width="stretch")

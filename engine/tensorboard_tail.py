"""Reading TensorBoard event files as they grow, with TensorBoard's own reader (`event_file_loader`; never a
hand-written protobuf parser). No torch here.

- `LogdirTail(folder).poll()`: what every event file under `folder` gained since the last poll, as a `Batch` of
  scalars, images, texts and hparams, each under the key the notebook shows. A record still being written is read
  at the next poll (the reader keeps its place); a file that will never grow again (`finish()`) names what could
  not be read of it: truncated, or corrupt from byte N on.

Keys: a tag written in the run's own folder keeps its name (`loss/train`); `add_scalars("acc", {"val": …})` writes
to the sub-folder `acc_val`, read back as `acc/val`; any other sub-folder's tags are `sub/tag`, except the
sub-folder `add_hparams` makes, whose metrics keep their own names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins.hparams import plugin_data_pb2

EVENT_FILE_GLOB = "events.out.tfevents.*"
RECORD_FRAME_BYTES = 16  # a TFRecord's length (8), its CRC (4) and the data's CRC (4) around each event
HPARAMS_PREFIX = "_hparams_/"
TEXT_SUFFIX = "/text_summary"
logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a half-written record is normal here, not a warning


@dataclass
class Batch:
    """What a poll read: (key, step, value, wall_time) scalars, (key, step, png) images, (key, step, text) texts,
    and the hparams seen (name -> value)."""

    scalars: list[tuple[str, int, float, float]] = field(default_factory=list)
    images: list[tuple[str, int, bytes]] = field(default_factory=list)
    texts: list[tuple[str, int, str]] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.scalars or self.images or self.texts or self.hparams)


@dataclass
class _File:
    loader: RawEventFileLoader
    sub: str  # its folder relative to the run's folder ("" for the run's own)
    read_bytes: int = 0
    hparams_folder: bool = False


def key_for(sub: str, tag: str, hparams_folder: bool = False) -> str:
    """The notebook key of `tag` written in sub-folder `sub` of a run's logdir (see the module's notes)."""
    if not sub or hparams_folder:
        return tag
    grouped = tag.replace("/", "_") + "_"  # how SummaryWriter.add_scalars names its sub-folders
    if sub.startswith(grouped) and "/" not in sub:
        return f"{tag}/{sub[len(grouped):]}"
    return f"{sub}/{tag}"


def hparams_of(content: bytes) -> dict[str, Any]:
    """The hyperparameters in an `_hparams_/session_start_info` summary's plugin content (TensorBoard's proto)."""
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    found: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        found[name] = getattr(value, kind) if kind else None
    return found


class LogdirTail:
    """Follows the event files of one run's logdir (its own folder and every sub-folder under it)."""

    def __init__(self, folder: Path, *, new_files_only: bool = False) -> None:
        """With `new_files_only`, the event files already there (another run's, in a shared logdir) are never read."""
        self.folder = Path(folder)
        self._files: dict[Path, _File] = {}
        self.passed_over = set(self._event_files()) if new_files_only else set()

    def files(self) -> list[Path]:
        return sorted(self._files)

    def _event_files(self) -> list[Path]:
        return sorted(self.folder.rglob(EVENT_FILE_GLOB)) if self.folder.is_dir() else []

    def _discover(self) -> None:
        for path in self._event_files():
            if path not in self._files and path not in self.passed_over and path.is_file():
                sub = path.parent.relative_to(self.folder).as_posix()
                self._files[path] = _File(RawEventFileLoader(str(path)), "" if sub == "." else sub)

    def poll(self) -> Batch:
        """Everything written since the last poll (new files included)."""
        self._discover()
        batch = Batch()
        for state in self._files.values():
            for record in state.loader.Load():
                state.read_bytes += len(record) + RECORD_FRAME_BYTES
                self._read_event(Event.FromString(record), state, batch)
        return batch

    def _read_event(self, event: Event, state: _File, batch: Batch) -> None:
        if not event.HasField("summary"):
            return
        for value in event.summary.value:
            plugin = value.metadata.plugin_data.plugin_name
            kind = value.WhichOneof("value")
            if value.tag.startswith(HPARAMS_PREFIX):
                state.hparams_folder = True
                if value.tag == HPARAMS_PREFIX + "session_start_info":
                    batch.hparams.update(hparams_of(value.metadata.plugin_data.content))
            elif kind == "simple_value":
                batch.scalars.append((key_for(state.sub, value.tag, state.hparams_folder), event.step,
                                      value.simple_value, event.wall_time))
            elif kind == "image":
                batch.images.append((key_for(state.sub, value.tag), event.step, value.image.encoded_image_string))
            elif kind == "tensor" and plugin == "text":
                tag = value.tag.removesuffix(TEXT_SUFFIX)
                text = b"\n".join(value.tensor.string_val).decode("utf-8", errors="replace")
                batch.texts.append((key_for(state.sub, tag), event.step, text))
            elif kind == "tensor" and plugin == "scalars" and value.tensor.float_val:  # a v2 scalar summary
                batch.scalars.append((key_for(state.sub, value.tag, state.hparams_folder), event.step,
                                      value.tensor.float_val[0], event.wall_time))

    def unreadable(self) -> list[str]:
        """For files that will not grow again: each one's bytes the reader could not get past, in words."""
        problems = []
        for path, state in self._files.items():
            try:
                size = path.stat().st_size
            except OSError as error:
                problems.append(f"{path}: could not be read ({error})")
                continue
            if state.read_bytes < size:
                problems.append(f"{path}: bytes {state.read_bytes}-{size} of {size} are unreadable (a truncated or "
                                "corrupt record); everything before them was read")
        return problems

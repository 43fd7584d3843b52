"""Episodes drawn one ahead on a background thread, so sampling never waits on the training step (or the reverse).

The thread is the sampler's only user while it runs and draws in the same order, so a seed gives the same episodes
as drawing them in the loop; `state()` is the sampler's state after the last episode handed out (not after the
one drawn ahead), so a checkpoint resumes exactly where the handed-out episodes stop.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, Callable, Generic, TypeVar

from data.episodes import Episode, EpisodeSampler

Prepared = TypeVar("Prepared")
_STOP = None


class PrefetchingSampler(Generic[Prepared]):
    """Hands out `prepare(sampler.sample())`, the next one already drawn and prepared while the caller works on
    this one. `prepare` runs on the background thread: give it the work that does not depend on the step (index
    the images, pin host memory for a non-blocking copy). The thread starts at the first `next()` and ends with
    `close()` or when this object is collected."""

    def __init__(self, sampler: EpisodeSampler, prepare: Callable[[Episode], Prepared]) -> None:
        self.sampler, self.prepare = sampler, prepare
        self._delivered_state: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._requests: queue.SimpleQueue[bool | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[tuple[Any, dict[str, Any] | None]] = queue.SimpleQueue()

    def next(self) -> Prepared:
        """The next episode, prepared; the one after it starts being drawn now."""
        if self._thread is None:
            self._start()
        item, state_after = self._ready.get()
        if state_after is None:  # the thread failed: raise its error here, where the loop can see it
            self._thread = None
            self.sampler.set_state(self._delivered_state)
            raise item
        self._delivered_state = state_after
        self._requests.put(True)
        return item

    def state(self) -> dict[str, Any]:
        """The sampler's state after the last episode handed out."""
        return self._delivered_state if self._thread is not None else self.sampler.state()

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from `state`: the episode drawn ahead is dropped."""
        self.close()
        self.sampler.set_state(state)

    def close(self) -> None:
        """Stop the thread and leave the sampler where the handed-out episodes stop."""
        if self._thread is not None:
            self._requests.put(_STOP)
            self._thread.join()
            self._thread = None
            self.sampler.set_state(self._delivered_state)  # what it drew ahead is not handed out

    def _start(self) -> None:
        self._delivered_state = self.sampler.state()
        self._requests = queue.SimpleQueue()
        self._ready = queue.SimpleQueue()
        self._requests.put(True)
        # the thread holds the queues, never this object: collecting it stops the thread
        self._thread = threading.Thread(target=_draw, args=(self.sampler, self.prepare, self._requests, self._ready),
                                        name="episode-prefetch", daemon=True)
        self._thread.start()
        weakref.finalize(self, self._requests.put, _STOP)


def _draw(sampler: EpisodeSampler, prepare: Callable[[Episode], Any], requests: queue.SimpleQueue,
          ready: queue.SimpleQueue) -> None:
    """Draw one episode per request until told to stop; an error is handed over once and ends the thread."""
    while requests.get() is not _STOP:
        try:
            episode = sampler.sample()
            ready.put((prepare(episode), sampler.state()))
        except BaseException as error:  # noqa: BLE001 - re-raised by `next()` in the caller's thread
            ready.put((error, None))
            return

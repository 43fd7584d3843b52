"""The prefetching sampler hands out exactly the episodes the sampler draws in order, resumes exactly from its
state, and really draws on another thread ahead of the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from data import EpisodeSampler
from data.prefetch import PrefetchingSampler

LABELS = np.repeat(np.arange(8), 10)


def sampler(seed: int = 3) -> EpisodeSampler:
    return EpisodeSampler(LABELS, np.arange(8), n_way=3, k_shot=2, q_queries=2, seed=seed)


def indices(episode) -> list[int]:
    return episode.indices.tolist()


def test_the_same_seed_gives_the_same_episodes_as_drawing_in_the_loop():
    plain = sampler()
    expected = [indices(plain.sample()) for _ in range(12)]
    prefetched = PrefetchingSampler(sampler(), indices)
    assert [prefetched.next() for _ in range(12)] == expected
    prefetched.close()
    other_seed = PrefetchingSampler(sampler(seed=4), indices)
    assert [other_seed.next() for _ in range(12)] != expected
    other_seed.close()


def test_state_is_after_the_last_episode_handed_out_not_the_one_drawn_ahead():
    plain = sampler()
    prefetched = PrefetchingSampler(sampler(), indices)
    for _ in range(5):
        plain.sample()
        prefetched.next()
    saved = prefetched.state()
    assert saved == plain.state()  # the thread has drawn episode 6 already; the state does not count it
    following = [indices(plain.sample()) for _ in range(4)]
    resumed = PrefetchingSampler(sampler(seed=99), indices)
    resumed.set_state(saved)
    assert [resumed.next() for _ in range(4)] == following
    prefetched.close()
    assert prefetched.sampler.state() == saved  # closing puts the episode drawn ahead back
    resumed.close()


def test_set_state_in_the_middle_drops_the_episode_drawn_ahead():
    prefetched = PrefetchingSampler(sampler(), indices)
    first = prefetched.state()
    a = [prefetched.next() for _ in range(3)]
    prefetched.set_state(first)
    assert [prefetched.next() for _ in range(3)] == a
    prefetched.close()


def test_the_next_episode_is_prepared_on_another_thread_while_the_caller_works():
    prepared_on: list[str] = []
    drawn_ahead = threading.Event()

    def prepare(episode):
        prepared_on.append(threading.current_thread().name)
        if len(prepared_on) == 2:
            drawn_ahead.set()
        return indices(episode)

    prefetched = PrefetchingSampler(sampler(), prepare)
    prefetched.next()
    # the caller has not asked for the second episode, yet it is being drawn
    assert drawn_ahead.wait(timeout=30), "the second episode was not drawn ahead of the caller"
    assert prepared_on == ["episode-prefetch", "episode-prefetch"]
    prefetched.close()


def test_an_error_in_the_thread_is_raised_in_the_caller_and_the_state_is_kept():
    calls = []

    def prepare(episode):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("data.path: unreadable image")
        return indices(episode)

    plain = sampler()
    prefetched = PrefetchingSampler(sampler(), prepare)
    prefetched.next()
    plain.sample()
    prefetched.next()
    plain.sample()
    with pytest.raises(ValueError, match="data.path"):
        prefetched.next()
    assert prefetched.state() == plain.state()


def test_collecting_the_sampler_stops_its_thread():
    prefetched = PrefetchingSampler(sampler(), indices)
    prefetched.next()
    thread = prefetched._thread
    assert thread is not None and thread.is_alive()
    del prefetched
    thread.join(timeout=30)
    assert not thread.is_alive()

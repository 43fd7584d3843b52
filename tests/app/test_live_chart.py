"""The live chart's messages (app/live_chart.py): only new points, enough of them for a browser that missed a
few messages, everything again when the series no longer hold what was sent."""

import numpy as np

from app.charts import debiased_ema
from app.live_chart import WINDOW, next_message


def series(n: int, start: int = 1, value=lambda step: 1.0 / step) -> tuple[np.ndarray, np.ndarray]:
    steps = np.arange(start, start + n)
    return steps, np.array([value(s) for s in steps], dtype=float)


def send(sent, held, **settings):
    return next_message(sent, held, title="Losses", smoothing=settings.get("smoothing", 0.6),
                        log_y=settings.get("log_y", False), identity=settings.get("identity", (1, 1)))


def browser_after(messages: list[dict]) -> dict[str, list]:
    """What a browser that took every message holds (the rule of app/live_chart.js, for one series)."""
    held: dict[str, list] = {}
    for message in messages:
        for part in message["series"]:
            points = held.setdefault(part["name"], [])
            if part["start"] == 0:
                points.clear()
            assert part["start"] <= len(points) <= part["start"] + len(part["x"])
            points.extend(list(zip(part["x"], part["y"], part["s"]))[len(points) - part["start"]:])
    return held


def test_the_first_message_holds_everything_then_only_the_points_of_the_last_few_messages():
    steps, values = series(100)
    messages, sent = [], None
    for n in (10, 20, 30, 40, 55):
        message, sent = send(sent, {"loss/total": (steps[:n], values[:n])})
        messages.append(message)
    starts = [m["series"][0]["start"] for m in messages]
    assert starts == [0, 0, 0, 10, 20]  # each message starts WINDOW messages back: a busy tab may miss some
    assert WINDOW == 3
    assert len({m["generation"] for m in messages}) == 1
    held = browser_after(messages)["loss/total"]
    assert [x for x, _, _ in held] == list(range(1, 56))
    # the smoothing carried on from one message to the next ends where the whole series' average would
    np.testing.assert_allclose([s for _, _, s in held], debiased_ema(values[:55], 0.6))


def test_a_browser_that_missed_up_to_two_messages_still_follows_on():
    steps, values = series(60)
    sent, seen = None, []
    for n in (10, 20, 30, 40, 50):
        message, sent = send(sent, {"loss/total": (steps[:n], values[:n])})
        seen.append(message)
    # a browser that took the first three and missed the next one takes the fifth
    held = browser_after([seen[0], seen[1], seen[2], seen[4]])["loss/total"]
    assert [x for x, _, _ in held] == list(range(1, 51))


def test_nothing_new_sends_the_same_message_again():
    steps, values = series(10)
    first, sent = send(None, {"loss/total": (steps, values)})
    again, sent_again = send(sent, {"loss/total": (steps, values)})
    assert again is first and sent_again is sent


def test_series_that_no_longer_hold_what_was_sent_start_a_new_generation():
    steps, values = series(50)
    message, sent = send(None, {"loss/total": (steps[:40], values[:40])})
    thinned = (steps[::2], values[::2])  # downsampled again: the 40th point sent is no longer the 40th held
    reset, _ = send(sent, {"loss/total": thinned})
    assert reset["generation"] != message["generation"]
    assert reset["series"][0]["start"] == 0 and reset["series"][0]["x"] == steps[::2].tolist()
    for changed in ({"identity": (1, 2)}, {"smoothing": 0.9}, {"log_y": True}):  # a resume, other settings
        again, _ = send(sent, {"loss/total": (steps[:40], values[:40])}, **changed)
        assert again["generation"] != message["generation"] and again["series"][0]["start"] == 0
    another_key, _ = send(sent, {"loss/total": (steps[:40], values[:40]), "eval/loss/total": series(2)})
    assert another_key["generation"] != message["generation"]


def test_points_that_cannot_be_drawn_are_null_and_non_finite_ones_are_marked():
    steps = np.arange(1, 6)
    values = np.array([1.0, float("nan"), 0.0, float("inf"), 2.0])
    message, _ = send(None, {"loss/total": (steps, values)}, log_y=True)
    part = message["series"][0]
    assert part["y"] == [1.0, None, None, None, 2.0]  # NaN, inf, and 0 on a log axis
    assert {mark["label"] for mark in message["marks"]} == {"loss/total: NaN", "loss/total: +inf"}
    assert next(m for m in message["marks"] if m["label"].endswith("NaN"))["x"] == [2]

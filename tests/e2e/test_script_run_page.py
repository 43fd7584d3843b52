"""A script run in Chromium: the New-run page's "Your script" kind launches an unchanged SummaryWriter script
through the app's worker; its TensorBoard curves grow live on the Run page; Stop ends it (SIGTERM). The
screenshot goes to test-output/screenshots/ (app/screenshots/run-script-live.png is a copy)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from lab_notes import Notebook
from tests.e2e.conftest import shoot
from tests.e2e.page_scripts import LAST_STEP_IN_FIRST_CHART
from tests.helpers import wait_for

TRAIN = '''"""An ordinary TensorBoard training script: it knows nothing of the notebook."""
import math, os, signal, sys, time
import numpy as np
from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter(os.environ["TENSORBOARD_LOGDIR"], flush_secs=1)
signal.signal(signal.SIGTERM, lambda *_: (writer.close(), print("SIGTERM: closed the writer", flush=True),
                                          sys.exit(0)))
lr = float(sys.argv[sys.argv.index("--lr") + 1])
writer.add_text("notes", f"plain SummaryWriter, lr {lr}", 0)
for step in range(100_000):
    loss = 2.0 * math.exp(-lr * step / 20) + 0.05 * math.sin(step / 3)
    writer.add_scalar("loss/train", loss, step)
    writer.add_scalars("accuracy", {"train": 1 - loss / 2.2, "heldout": 0.9 * (1 - loss / 2.2)}, step)
    if step % 50 == 0:
        writer.add_image("samples", np.random.default_rng(step).random((3, 32, 32)), step)
        print(f"step {step}: loss {loss:.3f}", flush=True)
    time.sleep(0.05)
'''


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory):
    """LAB_CODE_DIR for the app server and its worker: a folder holding the script."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "train.py").write_text(TRAIN)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_CODE_DIR", str(folder))
        yield folder


def test_a_script_run_launched_from_the_page_is_watched_live_and_stopped(code_dir, app_server, page):
    base = app_server["base"]
    page.goto(f"{base}/new")
    page.get_by_role("heading", name="New run").wait_for()
    page.get_by_text("Your script").click()
    command = page.get_by_label(re.compile("^Command"))
    command.fill(f"{sys.executable} train.py --lr 0.5")
    command.press("Enter")
    page.get_by_label("Run name").fill("my TensorBoard script")
    page.get_by_label("Run name").press("Enter")
    page.get_by_text(re.compile(r"^Runs \[")).wait_for()  # the command as it will run, split into arguments
    page.get_by_role("button", name="🚀 Launch").click()
    page.wait_for_url(re.compile(r".*/run\?run=\d+"))
    page.get_by_role("heading", name=re.compile(r"Run \d+ — my TensorBoard script")).wait_for()
    first = wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART), 180, "the first TensorBoard points")
    wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART) > first + 40, 60, "the curves to grow while it runs")
    assert page.get_by_role("tab", name="Evaluation").count() == 0
    shoot(page, "9-run-script-live")
    run_id = int(re.search(r"run=(\d+)", page.url).group(1))
    page.get_by_role("button", name="⏹ Stop").click()
    page.get_by_text("stopped", exact=True).wait_for(timeout=60_000)
    with Notebook(app_server["db"]) as notebook:
        run = wait_for(lambda: (r := notebook.get_run(run_id)).exit_code is not None and r, 60, "the worker to reap it")
        assert (run.status, run.exit_code) == ("stopped", 0)
        wait_for(lambda: "SIGTERM: closed the writer" in notebook.get_run(run_id).log_tail, 30, "the script's last words")
        assert {"loss/train", "accuracy/train", "accuracy/heldout"} <= set(notebook.metric_keys(run_id))

"""One run on two processes (gloo, CPU): the same losses and gradients as one process, rank 0 the only writer,
stop and resume, the CLI, and started ranks that never outlive rank 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.checkpoints import load_checkpoint
from engine.config import ConfigError, RunConfig, validate_config
from engine.presets import PRESETS
from engine.distributed import EpisodeSlice, ranks
from engine.models import ExperimentModel
from engine.train import load_episodes, train
from lab_notes import Notebook
from lab_notes.notebook_sink import NotebookSink
from tests.engine.test_cli import ROOT, run_cli
from tests.engine.test_presets import Recorder
from tests.helpers import claimed, tiny, wait_for

# Contrastive + jointly trained discriminator + two separate decoders (masked and normalised targets) on masked
# images; 3-way (2 support + 1 query) episodes are 9 images, so two ranks hold 5 and 4 (the padded gather).
EVERYTHING_ON = ["model.discriminator.enabled=true", "model.discriminator.hidden_dim=32",
                 "model.masking.ratio=0.5", "model.decoders.count=2", "model.decoders.share=false",
                 "model.decoders.first.target=\"masked\"", "model.decoders.second.target=\"normalized\"",
                 "model.decoders.second.weight=0.5", "model.contrastive.feature_dim=8", "data.q_queries=1",
                 "runtime.system_metrics_seconds=0", "schedule.histogram_every=0"]
RUN = ["schedule.episodes=20", "schedule.eval_every=10", "schedule.image_every=10", "schedule.checkpoint_every=4",
       "schedule.eval_episodes=2", "schedule.final_eval_episodes=6", "runtime.processes=2"]


def everything_on(*extra: str) -> RunConfig:
    return tiny(PRESETS["tiny"], *EVERYTHING_ON, *extra)


def one_episode_step(cfg: RunConfig, part_of: int | None = None) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and every parameter's gradient (after DDP's all-reduce, in a process group) on the run's first
    episode, built exactly as `train` builds it."""
    with ranks(cfg, torch.device("cpu")) as team:
        torch.manual_seed(cfg.runtime.seed)
        source = load_episodes(cfg, team.device)
        model = ExperimentModel(cfg)
        trained = team.wrap(model)
        images, labels, is_query = source.batch(source.train)
        part = team.slice_of(len(labels))
        out = trained(images[part.rows], labels, is_query, part=part)
        out.total.backward()
        return out.total.item(), {name: p.grad.clone() for name, p in model.named_parameters()
                                  if p.grad is not None}


def _rank_main(rank: int, world: int, rendezvous: str, config: dict, out_dir: str) -> None:
    """One spawned rank: the episode's loss and gradients, then the decisions ranks must agree on."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        loss, grads = one_episode_step(validate_config(config))
        with ranks(validate_config(config), torch.device("cpu")) as team:
            agreed = {
                # only rank 1 sees a non-finite loss: every rank acts on rank 1's finding
                "incident": team.agree_on_incident("loss", "loss/total is nan" if rank == 1 else None),
                "no_incident": team.agree_on_incident("gradient", None),
                "stop": team.agree_to_stop(rank == 0),  # only rank 0's sink asks
                "from_writer": team.from_writer({"step": 7} if rank == 0 else None),
            }
        torch.save({"loss": loss, "grads": grads, "agreed": agreed}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_one_process_loss_and_every_gradient(tmp_path):
    cfg = everything_on("runtime.processes=2")
    alone_loss, alone_grads = one_episode_step(everything_on())
    assert {n.split(".")[0] for n in alone_grads} == {"encoder", "head", "discriminator", "decoders"}
    mp.start_processes(_rank_main, args=(2, str(tmp_path / "rendezvous"), cfg.model_dump(mode="json"),
                                         str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in (0, 1):
        found = torch.load(tmp_path / f"rank{rank}.pt")
        assert found["loss"] == pytest.approx(alone_loss, abs=1e-5)
        assert found["grads"].keys() == alone_grads.keys()
        for name, grad in alone_grads.items():
            torch.testing.assert_close(found["grads"][name], grad, rtol=0, atol=1e-5, msg=name)
        assert found["agreed"] == {"incident": ("loss", "loss/total is nan"), "no_incident": ("gradient", None),
                                   "stop": True, "from_writer": {"step": 7}}


def test_episode_slices_cover_the_episode_once():
    for size, world in ((9, 2), (12, 5), (40, 3)):
        rows = [EpisodeSlice(r, world, size).rows for r in range(world)]
        assert [i for s in rows for i in range(size)[s]] == list(range(size))
        assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1


def test_more_ranks_than_images_or_nodes_without_a_launcher_are_refused():
    with pytest.raises(ConfigError) as refused:
        everything_on("runtime.processes=10")  # 9 images an episode
    assert [p.path for p in refused.value.problems] == ["runtime.processes"]
    with pytest.raises(ValueError, match="runtime.nodes: 2 nodes need a launcher"):
        train(everything_on("runtime.nodes=2"), Recorder())


# --- whole runs ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A 2-process run of 20 episodes into a real notebook (SQLite), and the same run on one process."""
    folder = tmp_path_factory.mktemp("straight")
    cfg = everything_on(*RUN)
    notebook = Notebook(f"sqlite:///{folder / 'notebook.db'}")
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name="two processes")
    sink = NotebookSink(notebook, claimed(notebook, run_id))
    result = train(cfg, sink, run_dir=folder)
    alone = Recorder()
    train(everything_on(*RUN, "runtime.processes=1"), alone)
    yield {"result": result, "notebook": notebook, "run_id": run_id, "folder": folder, "cfg": cfg, "alone": alone}
    notebook.close()


def test_a_two_process_run_writes_each_metric_once_and_matches_one_process(straight):
    assert straight["result"].status == "completed" and straight["result"].step == 20
    notebook, run_id, alone = straight["notebook"], straight["run_id"], straight["alone"]
    assert notebook.get_run(run_id).status == "completed"
    keys = notebook.metric_keys(run_id)
    assert {"loss/total", "loss/contrastive", "loss/disc", "loss/recon_a", "loss/recon_b", "eval/acc/prototype",
            "grad_norm"} <= set(keys)
    for key in keys:
        steps, _ = notebook.metric_history(run_id, key)
        assert len(steps) == len(set(steps.tolist())), f"{key} written more than once at a step"
    steps, losses = notebook.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, 21))
    # the same experiment: step by step the single-process losses, within float32 summation order
    assert losses.tolist() == pytest.approx(alone.losses(), abs=1e-4)
    assert notebook.metric_history(run_id, "eval/loss/total")[0].tolist() == [10, 20]
    assert notebook.snapshot_steps(run_id, "features") == [10, 20]
    assert [c.step for c in notebook.checkpoints(run_id)] == [4, 8, 12, 16, 20]
    assert sorted(p.name for p in (straight["folder"] / "checkpoints").iterdir())[-1] == "step_000000020.pt"
    assert json.loads((straight["folder"] / "eval.json").read_text())["episodes"] == 6


def test_stop_and_resume_of_a_two_process_run_equal_a_straight_one(straight, tmp_path):
    cfg = straight["cfg"]
    first = Recorder(stop_after=8)
    result = train(cfg, first, run_dir=tmp_path)
    assert result.status == "stopped" and result.step == 8
    second = Recorder()
    result = train(cfg, second, resume_from=tmp_path / "checkpoints", run_dir=tmp_path)
    assert result.status == "completed" and min(second.metrics) == 9
    _, straight_losses = straight["notebook"].metric_history(straight["run_id"], "loss/total")
    assert first.losses() + second.losses() == pytest.approx(straight_losses.tolist(), abs=1e-6)
    resumed = load_checkpoint(tmp_path / "checkpoints")["model"]
    uninterrupted = load_checkpoint(straight["folder"] / "checkpoints")["model"]
    for name, weights in uninterrupted.items():
        torch.testing.assert_close(resumed[name], weights, rtol=0, atol=1e-6, msg=name)


def test_the_cli_trains_on_two_processes(tmp_path):
    out = run_cli("train", "--preset", "tiny", "--set", "runtime.processes=2", "--set", "schedule.episodes=6",
                  "--set", "schedule.image_every=3", "--set", "schedule.final_eval_episodes=6", "--out",
                  str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss/total" in r] == [1, 2, 3, 4, 5, 6]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["processes"] for e in events if e["kind"] == "started"] == [2]
    assert [e["kind"] for e in events].count("status") == 1
    assert len(list((tmp_path / "images" / "reconstruction").glob("*.png"))) == 2


class FailingSink(Recorder):
    """Rank 0's sink breaks at step 3 (a full disk, a lost database): the run ends by exception."""

    def log_metrics(self, step, values):
        if step == 3:
            raise OSError("no space left on device")
        super().log_metrics(step, values)


def test_started_ranks_are_ended_when_rank_0_fails(tmp_path):
    if not Path("/proc").is_dir():
        pytest.skip("reads /proc to find the started ranks (Linux only)")
    with pytest.raises(OSError, match="no space left"):
        train(everything_on(*RUN), FailingSink())
    assert _started_ranks_of(os.getpid()) == []  # ended (and reaped) before train() raised


def _started_ranks_of(pid: int) -> list[int]:
    """Pids of `python -m engine rank --parent-pid PID` processes (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rank" in argv and b"--parent-pid" in argv and argv[argv.index(b"--parent-pid") + 1] == str(pid).encode():
            found.append(int(proc.name))
    return found


def test_started_ranks_end_when_rank_0_is_killed(tmp_path):
    if not Path("/proc").is_dir():
        pytest.skip("reads /proc to find the started ranks (Linux only)")
    parent = subprocess.Popen([sys.executable, "-m", "engine", "train", "--preset", "tiny", "--set",
                               "runtime.processes=2", "--set", "schedule.episodes=100000", "--out", str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and (tmp_path / "metrics.jsonl").stat().st_size,
                 120, "the first metrics of the 2-process run")
        children = _started_ranks_of(parent.pid)
        assert len(children) == 1
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not _started_ranks_of(parent.pid), 30, "rank 1 to end after rank 0 was killed")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


"""One run on several processes (torch.distributed): starting the ranks or joining a launcher's, the process
group, each rank's slice of an episode and the gather that keeps its gradient, and the few decisions every rank
must take together (stop; a non-finite value anywhere). Nothing here knows the model's parts or the notebook.

How a run gets its ranks, in the order `ranks` tries them:
- already inside a process group (a test, a caller that set one up): use it;
- RANK and WORLD_SIZE in the environment (torchrun, or Slurm's tasks mapped to them): join that group;
- otherwise the calling process becomes rank 0 and starts ranks 1..N-1 itself, as torchrun would
  (`python -m engine rank`, config on stdin), so the CLI, the worker and a Slurm job share one launch path.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from engine.config import RunConfig, data_root
from engine.rendezvous import environment_while, loopback_interface, loopback_store

# Long enough for rank 0 to evaluate alone while the others wait at the next step's first collective.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
STARTUP_SECONDS = 300.0  # for every started rank to import torch and reach the store (slow on a busy machine)
EXIT_GRACE_SECONDS = 30.0  # for started ranks to leave on their own once training is over
PARENT_POLL_SECONDS = 0.5
ORPHAN_EXIT_CODE = 70
STARTED_BY = "LAB_RANKS_STARTED_BY"  # set for ranks this module started: they check in before joining
ENGINE_ROOT = Path(__file__).resolve().parents[1]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the run; 0 when it runs alone."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes share the run; 1 when it runs alone."""
    return dist.get_world_size() if is_distributed() else 1


def launcher_rank() -> int:
    """The rank a launcher (torchrun, Slurm) gave this process, before any group is joined; 0 without one."""
    return int(os.environ.get("RANK", "0"))


# --- an episode split across ranks --------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSlice:
    """Rank `rank`'s rows of an episode of `size` images shared by `world_size` processes: contiguous, the first
    `size % world_size` ranks holding one more. With one process it is the whole episode and nothing communicates."""

    rank: int
    world_size: int
    size: int

    @classmethod
    def whole(cls, size: int) -> "EpisodeSlice":
        return cls(0, 1, size)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of every rank's rows."""
        share, extra = divmod(self.size, self.world_size)
        stops = [sum(share + (r < extra) for r in range(i + 1)) for i in range(self.world_size)]
        return [(stop - share - (i < extra), stop) for i, stop in enumerate(stops)]

    @property
    def rows(self) -> slice:
        start, stop = self.bounds[self.rank]
        return slice(start, stop)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """(rows, …) on each rank -> (size, …) on every rank, in episode order, with gradient: the losses over
        the whole episode reach each rank's rows (see `_GatherRows`)."""
        return local if self.world_size == 1 else _GatherRows.apply(local, self)

    def sum(self, local: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a per-rank partial (a scalar), on every rank, with gradient."""
        return local if self.world_size == 1 else _SumOverRanks.apply(local)


class _GatherRows(torch.autograd.Function):
    """all_gather that passes gradients back. Forward: each rank's rows, padded to the longest slice (a collective
    needs equal shapes), gathered, the padding cut. Backward: every rank computed the same losses on the whole
    episode, so each holds one copy of the gradient for every row; their sum is summed over ranks and each keeps
    its own rows. Each rank's encoder gradient is then `world_size` times its rows' share, and DDP's mean over
    ranks makes it the sum of the shares: the single-process gradient."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, part: EpisodeSlice) -> torch.Tensor:
        ctx.part = part
        bounds = part.bounds
        longest = max(stop - start for start, stop in bounds)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: len(local)] = local
        pieces = [torch.empty_like(padded) for _ in bounds]
        dist.all_gather(pieces, padded)
        return torch.cat([piece[: stop - start] for piece, (start, stop) in zip(pieces, bounds)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        summed = grad.contiguous().clone()
        dist.all_reduce(summed)
        return summed[ctx.part.rows], None


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(sum) that passes gradients back: every rank's loss uses the sum, so the gradient each rank's
    partial gets is the sum of theirs (`world_size` times one, as for the gathered rows)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        summed = local.contiguous().clone()
        dist.all_reduce(summed)
        return summed

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        summed = grad.contiguous().clone()
        dist.all_reduce(summed)
        return summed


# --- this process's place in the run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    """The processes training one run, seen from one of them. With `world_size` 1 every method is a no-op."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes: metrics, images, checkpoints, status, evaluation."""
        return self.rank == 0

    def slice_of(self, episode_size: int) -> EpisodeSlice:
        return EpisodeSlice(self.rank, self.world_size, episode_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module training steps call: DDP (gradients averaged over ranks in backward), or the model alone."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def agree_to_stop(self, asked: bool) -> bool:
        """Rank 0's sink is the one that hears a stop request; every rank acts on its answer."""
        if self.world_size == 1:
            return asked
        flag = torch.tensor([int(asked)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def agree_on_incident(self, stage: str, reason: str | None) -> tuple[str, str | None]:
        """A non-finite value found on any rank acts on all: the lowest rank's (stage, reason) that found one,
        or this rank's own (stage, None) when none did. One small all-reduce when all is well."""
        if self.world_size == 1:
            return stage, reason
        flag = torch.tensor([int(reason is not None)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not flag.item():
            return stage, None
        found = [json.loads(b) for b in self._all_gather_bytes(json.dumps([stage, reason]).encode())]
        return next((s, r) for s, r in found if r is not None)

    def from_writer(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (e.g. the checkpoint rank 0 read: no shared folder needed)."""
        if self.world_size == 1:
            return value
        # torch.save / weights_only load, not broadcast_object_list: a rank never unpickles arbitrary objects off
        # a socket (tensors, numbers, strings, lists and dicts only, as for a checkpoint file).
        payload = b""
        if self.is_writer:
            buffer = io.BytesIO()
            torch.save(value, buffer)
            payload = buffer.getvalue()
        size = torch.tensor([len(payload)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, src=0)
        data = (torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(self.device) if self.is_writer
                else torch.empty(int(size.item()), dtype=torch.uint8, device=self.device))
        dist.broadcast(data, src=0)
        if self.is_writer:
            return value
        return torch.load(io.BytesIO(data.cpu().numpy().tobytes()), map_location="cpu", weights_only=True)

    def _all_gather_bytes(self, mine: bytes) -> list[bytes]:
        """Every rank's `mine`, in rank order: raw bytes in tensors (no pickle on the wire)."""
        size = torch.tensor([len(mine)], dtype=torch.int64, device=self.device)
        sizes = [torch.empty_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        longest = max(int(n.item()) for n in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        padded[: len(mine)] = torch.frombuffer(bytearray(mine), dtype=torch.uint8) if mine else padded[:0]
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded)
        return [piece[: int(n.item())].cpu().numpy().tobytes() for piece, n in zip(pieces, sizes)]


def ranks_wanted(cfg: RunConfig) -> int:
    return cfg.runtime.processes * cfg.runtime.nodes


@contextlib.contextmanager
def ranks(cfg: RunConfig, device: torch.device) -> Iterator[Team]:
    """This process's Team for `cfg`, starting or joining the process group as the module docstring says, and
    leaving it (and ending any ranks it started) on the way out, normally or by exception.

    device: the kind picked for the run (`cpu` or `cuda`); each rank gets its own GPU, by local rank."""
    wanted = ranks_wanted(cfg)
    if is_distributed():
        yield _team(device)
        return
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        launched = int(os.environ["WORLD_SIZE"])
        if launched != wanted:
            raise ValueError(f"runtime.processes: the launcher started {launched} processes but runtime.processes "
                             f"× runtime.nodes is {wanted}")
        if wanted == 1:
            yield Team(0, 1, 0, device)
            return
        with _joined(device) as team:
            yield team
        return
    if wanted == 1:
        yield Team(0, 1, 0, device)
        return
    if cfg.runtime.nodes > 1:
        raise ValueError(f"runtime.nodes: {cfg.runtime.nodes} nodes need a launcher that starts the processes on "
                         "each (Slurm, torchrun); this process can start ranks only on its own machine")
    with _started(cfg, device) as team:
        yield team


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _rank_device(device: torch.device, local_rank: int, local_ranks: int) -> torch.device:
    """One GPU per local rank on CUDA; the CPU is shared."""
    if device.type == "mps":
        raise ValueError("runtime.device: several processes need CPU (gloo) or CUDA (NCCL); MPS has neither")
    if device.type != "cuda":
        return torch.device("cpu")
    if local_ranks > torch.cuda.device_count():
        raise RuntimeError(f"runtime.processes: {local_ranks} processes on this node but only "
                           f"{torch.cuda.device_count()} CUDA devices; one GPU each")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _team(device: torch.device) -> Team:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return Team(dist.get_rank(), dist.get_world_size(), local_rank, _rank_device(device, local_rank, local_ranks))


@contextlib.contextmanager
def _joined(device: torch.device) -> Iterator[Team]:
    """Join the group a launcher set up in the environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
    LOCAL_RANK); ranks this module started check in at the store first, so rank 0 knows they are alive."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    team_device = _rank_device(device, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    rank_, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if os.environ.get(STARTED_BY):
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, False,
                              timeout=COLLECTIVE_TIMEOUT)
        store.set(f"ready/{rank_}", "1")
        dist.init_process_group(backend_for(team_device), store=store, rank=rank_, world_size=world,
                                timeout=COLLECTIVE_TIMEOUT)
    else:
        dist.init_process_group(backend_for(team_device), init_method="env://", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield Team(rank_, world, local_rank, team_device)
    finally:
        dist.destroy_process_group()


def threads_per_rank(processes: int) -> int:
    """CPU threads each of `processes` ranks on this machine gets, so they do not fight over the cores."""
    return max(1, (os.cpu_count() or 1) // processes)


@contextlib.contextmanager
def _started(cfg: RunConfig, device: torch.device) -> Iterator[Team]:
    """This process as rank 0, with ranks 1..N-1 started as `python -m engine rank` subprocesses. They drop
    everything they would write, end when this process ends (they watch its pid), and are ended if it fails."""
    world = ranks_wanted(cfg)
    team_device = _rank_device(device, 0, world)
    threads = threads_per_rank(world)
    store = loopback_store(world, COLLECTIVE_TIMEOUT)
    loopback = loopback_interface()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": str(world),
           # every rank is on this host: gloo's and NCCL's own sockets on loopback too, not on the host's network
           **({"GLOO_SOCKET_IFNAME": loopback, "NCCL_SOCKET_IFNAME": loopback} if loopback else {}),
           "LOCAL_WORLD_SIZE": str(world), STARTED_BY: str(os.getpid()), "LAB_DATA_DIR": str(data_root()),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           # the caller's working folder stays the ranks' (relative paths agree); the engine is importable from it
           "PYTHONPATH": os.pathsep.join(p for p in (str(ENGINE_ROOT), os.environ.get("PYTHONPATH")) if p)}
    config = json.dumps(cfg.model_dump(mode="json"))
    children: list[subprocess.Popen] = []
    threads_before = torch.get_num_threads()
    try:
        for r in range(1, world):
            child = subprocess.Popen([sys.executable, "-m", "engine", "rank", "--parent-pid", str(os.getpid())],
                                     env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdin=subprocess.PIPE,
                                     text=True)
            children.append(child)
            assert child.stdin is not None  # stdin=PIPE
            child.stdin.write(config)
            child.stdin.close()
        _wait_for_check_in(store, children)
        if team_device.type == "cpu":
            torch.set_num_threads(threads)
        with environment_while({k: env[k] for k in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME") if k in env}):
            dist.init_process_group(backend_for(team_device), store=store, rank=0, world_size=world,
                                    timeout=COLLECTIVE_TIMEOUT)
        try:
            yield Team(0, world, 0, team_device)
        finally:
            dist.destroy_process_group()
        _wait_for_exit(children, EXIT_GRACE_SECONDS)
    finally:
        torch.set_num_threads(threads_before)
        _end(children)


def _wait_for_check_in(store: dist.TCPStore, children: list[subprocess.Popen]) -> None:
    """Until every started rank is at the store; a rank that died first is an error now, not a hang later."""
    deadline = time.monotonic() + STARTUP_SECONDS
    keys = [f"ready/{r}" for r in range(1, len(children) + 1)]
    while not store.check(keys):
        for r, child in enumerate(children, start=1):
            if child.poll() is not None:
                raise RuntimeError(f"rank {r} exited with code {child.returncode} before joining the run")
        if time.monotonic() > deadline:
            raise RuntimeError(f"ranks did not join within {STARTUP_SECONDS:g} s")
        time.sleep(0.05)


def _wait_for_exit(children: list[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            return  # `_end` ends it


def _end(children: list[subprocess.Popen]) -> None:
    """Terminate started ranks still running, then kill any that ignore it."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def exit_when_orphaned(parent_pid: int) -> None:
    """A started rank ends at once when rank 0's process is gone (its parent changes): it must never train on
    alone, holding a GPU or the cores, whatever its collectives are waiting for."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(ORPHAN_EXIT_CODE)

    if os.getppid() != parent_pid:
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(target=watch, name="watch-rank-0", daemon=True).start()

"""A run on several processes of one host meets on loopback only: while a real two-process run trains, every
socket that its processes listen on (rank 0's TCPStore, gloo's own) is on 127.0.0.1, none on 0.0.0.0 or ::.
(What the ranks send each other is tensors only, no pickle: tests/engine/test_distributed.py runs those paths.)"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading

import psutil
import torch.distributed as dist

from engine.presets import PRESETS
from engine.rendezvous import loopback_store
from engine.train import train
from tests.engine.test_presets import Recorder
from tests.helpers import tiny, wait_for


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket `pid` and its children listen on."""
    pids = {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="tcp")
            if c.pid in pids and c.status == psutil.CONN_LISTEN}


def test_the_store_for_ranks_on_this_host_listens_on_loopback_alone():
    store = loopback_store(2, dt.timedelta(seconds=30))
    try:
        bound = {ip for ip, port in listening(psutil.Process().pid) if port == store.port}
        assert bound == {"127.0.0.1"}, bound
        client = dist.TCPStore("127.0.0.1", store.port, 2, False, timeout=dt.timedelta(seconds=30))
        client.set("ready/1", "1")  # and it still works as a store
        assert store.get("ready/1") == b"1"
    finally:
        del store


def test_a_two_process_run_listens_on_loopback_only_while_it_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny(PRESETS["tiny"], "runtime.processes=2", "schedule.episodes=30", "schedule.eval_every=1000",
               "schedule.image_every=1000", "schedule.checkpoint_every=1000", "schedule.final_eval_episodes=2",
               "runtime.system_metrics_seconds=0")
    seen: set[tuple[str, int]] = set()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            train(cfg, Recorder())
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failure.append(error)

    trainer = threading.Thread(target=run)
    trainer.start()
    try:
        def both_ranks_listen() -> bool:  # the store, and gloo's sockets in each rank
            seen.update(listening(psutil.Process().pid))
            return len(psutil.Process().children()) >= 1 and len(seen) >= 2
        wait_for(both_ranks_listen, 300, "the run's ranks to listen")
        while trainer.is_alive():
            seen.update(listening(psutil.Process().pid))
            trainer.join(0.05)
    finally:
        trainer.join()
    assert not failure, failure
    not_loopback = {(ip, port) for ip, port in seen if not ipaddress.ip_address(ip).is_loopback}
    assert seen and not not_loopback, f"listening beyond loopback: {not_loopback} (all: {seen})"

"""Where the ranks of a run on one host meet, kept on this host: rank 0's TCPStore bound to 127.0.0.1 only, and
gloo's and NCCL's own sockets on the loopback interface. Nothing here is reachable from another machine."""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import timedelta
from typing import Iterator

import psutil
import torch.distributed as dist


def loopback_store(world: int, timeout: timedelta) -> dist.TCPStore:
    """Rank 0's rendezvous store for ranks on this host, listening on 127.0.0.1 alone. TCPStore binds every
    interface whatever host it is given (`ss -ltn` shows `*:PORT`), so the socket is bound here and handed over
    (`master_listen_fd`): another host's user cannot reach the store, nor write keys the ranks read."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
    except OSError:
        listener.close()
        raise
    # the store owns the descriptor from here (it closes it): detached, so Python's socket does not close it too
    return dist.TCPStore("127.0.0.1", port, world, True, timeout=timeout, wait_for_workers=False,
                         master_listen_fd=listener.detach())


def loopback_interface() -> str | None:
    """This host's loopback interface (`lo` on Linux, `lo0` on macOS), for gloo's and NCCL's own sockets."""
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == "127.0.0.1" for a in addresses):
            return name
    return None


@contextlib.contextmanager
def environment_while(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the block runs, then as before."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

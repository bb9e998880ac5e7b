"""The federation a ServerApp is given must be the experiment's: a plain ``flwr run`` simulates Flower's default of
2 SuperNodes whatever the sim says, and would otherwise train the wrong number of data owners and report success."""

from __future__ import annotations

import time


class FederationError(RuntimeError):
    pass


def sim_folder(grid) -> str:
    """The sim folder of this app, from its Flower project name (``fedot-smollm2-1client`` -> smollm2_1client)."""
    fab_id = getattr(getattr(grid, "run", None), "fab_id", "") or ""
    name = fab_id.rsplit("/", 1)[-1].removeprefix("fedot-").replace("-", "_")
    return f"sims/{name}" if name else "sims/<experiment>"


def await_data_owners(grid, num_clients: int, wait_s: float, poll_s: float = 1.0) -> list[int]:
    """The SuperNodes of the federation once there are exactly ``num_clients``; else a clear stop."""
    deadline = time.monotonic() + wait_s
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) == num_clients:
            return nodes
        if len(nodes) > num_clients or time.monotonic() >= deadline:
            sim = sim_folder(grid)
            raise FederationError(
                f"this experiment declares num-clients = {num_clients} data owners but the federation has "
                f"{len(nodes)} SuperNodes, so it would train the wrong number of data owners. Run it with "
                f"`fedot sim {sim}`, or with plain Flower: `flwr run {sim} --federation-config "
                f"\"num-supernodes={num_clients}\"` (a deployment needs {num_clients} SuperNodes connected, or a "
                "larger wait-for-clients-s)")
        time.sleep(poll_s)

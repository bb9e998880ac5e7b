"""A data owner's Ray worker that dies (kill -9, the OOM killer, its raylet lost) is replaced, or the pool shrinks.

Flower's simulation runs each ClientApp in an actor of a fixed pool (``BasicActorPool``, flwr 1.41
``simulation/ray_transport/ray_actor.py``), one engine thread per actor. When the actor's process dies mid-task,
``ray.get`` raises ``RayActorError`` and ``RayBackend.process_message`` puts the *dead* actor back into the pool;
every later message handed to it fails at once with ``ActorDiedError``. Measured on the quickstart (4 data owners, 2
actors, one worker killed in round 2): every round from then on got 1 valid reply of 4 (bench/results/crash.json).
Ray core fixed the same defect in its own ``ray.util.ActorPool`` (ray-project/ray#64646: evict dead actors instead
of recycling them); Flower's pool is separate and still has it.

``replace_dead_actors()`` changes three methods of Flower's pool:

- the result fetch: on ``RayActorError`` the dead actor is swapped, before the failure propagates, for a fresh one
  made by the pool's own ``create_actor_fn`` (same class, same resources) once that one has started
  (``__ray_ready__`` within :data:`READY_S`, or ``FEDOT_WORKER_START_S`` seconds). When it cannot start there (the
  dead worker's raylet is gone with its CPUs: a second machine lost) the replacement is killed and the pool shrinks
  by one, instead of holding a task that would wait for ever and keep the simulation from exiting;
- returning an actor to the pool: a dead actor that nothing replaced is not returned;
- ``submit``: waits for an idle actor rather than failing on an empty list, since after a shrink the engine has
  more threads than actors; with no actor left at all it raises, naming the cause and the resume command.

So the round ends with the other replies (the dead worker's is rejected as an error reply, or times out under
``round-timeout-s``) and the next round finds working workers. The ServerApp calls it: in a simulation Flower runs
the ServerApp and the actor pool in one process (``flwr-simulation``); a deployment has no pool and nothing
changes. It is idempotent, and the originals stay reachable as ``__wrapped__``. ``FEDOT_REPLACE_DEAD_WORKERS=0`` in
the environment of ``fedot sim`` leaves Flower's pool as it is (``bench/attacks.py crash`` measures both).
"""

from __future__ import annotations

import functools
import logging
import os
import time

LOG = logging.getLogger("fedot")
READY_S = 60.0  # how long a replacement worker may take to start before its node is taken to be gone
READY_ENV = "FEDOT_WORKER_START_S"  # overrides READY_S (seconds), e.g. where workers start fast and time is short
IDLE_POLL_S = 0.05


def _replacement(pool, ray):
    """A started actor to take a dead one's place, or None when the cluster has no room for one."""
    actor = pool.create_actor_fn()
    ready, _ = ray.wait([actor.__ray_ready__.remote()], timeout=float(os.environ.get(READY_ENV, READY_S)))
    if ready:
        LOG.warning("a data owner's Ray worker died mid-task; a new worker takes its place")
        return actor
    ray.kill(actor)
    pool.num_actors -= 1
    LOG.warning("a data owner's Ray worker died and no node has room for a new one (its raylet is gone?); "
                "%d worker(s) remain", pool.num_actors)
    return None


def replace_dead_actors() -> bool:
    """Install the replacement on Flower's ``BasicActorPool``; True when it is in place."""
    if os.environ.get("FEDOT_REPLACE_DEAD_WORKERS", "1") == "0":
        return False
    try:
        import ray
        from flwr.simulation.ray_transport.ray_actor import BasicActorPool
    except ImportError:  # no simulation extra: nothing to patch
        return False
    fetch, submit, back = (BasicActorPool.fetch_result_and_return_actor_to_pool, BasicActorPool.submit,
                           BasicActorPool.add_actor_back_to_pool)
    if hasattr(fetch, "__wrapped__"):
        return True

    @functools.wraps(fetch)
    def fetch_replacing_dead(self, future):
        try:
            return fetch(self, future)
        except ray.exceptions.RayActorError:
            # process_message's error path hands whatever actor ran this future back to the pool: the new one
            self._future_to_actor[future] = _replacement(self, ray)
            raise

    @functools.wraps(back)
    def back_unless_gone(self, future):
        if self._future_to_actor.get(future, False) is None:  # its worker died and nothing replaced it
            del self._future_to_actor[future]
            return
        back(self, future)

    @functools.wraps(submit)
    def submit_when_idle(self, actor_fn, job):
        while True:
            if self.num_actors <= 0:
                raise RuntimeError("no Ray worker is left for data owners: every raylet that hosted one is gone. "
                                   "Restart the cluster and continue the run with `fedot sim --resume --run-dir "
                                   "RUN_DIR`")
            try:
                return submit(self, actor_fn, job)
            except IndexError:  # all remaining actors are busy (fewer actors than engine threads): wait for one
                time.sleep(IDLE_POLL_S)

    BasicActorPool.fetch_result_and_return_actor_to_pool = fetch_replacing_dead
    BasicActorPool.add_actor_back_to_pool = back_unless_gone
    BasicActorPool.submit = submit_when_idle
    return True

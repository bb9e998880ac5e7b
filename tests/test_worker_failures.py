"""A data owner's Ray worker killed mid-round: the round ends with the other replies, the next round has a worker."""

import json
import os
import subprocess
import sys

import pytest


class _Actor:
    def __init__(self, name):
        self.name = name
        self.__ray_ready__ = type("M", (), {"remote": lambda _: f"ready-{name}"})()


class _Pool:
    """What Flower's BasicActorPool holds that the replacement touches."""

    def __init__(self, actors):
        self._future_to_actor, self.pool, self.num_actors, self.made = {}, list(actors), len(actors), 0

    def create_actor_fn(self):
        self.made += 1
        return _Actor(f"new-{self.made}")


@pytest.fixture
def patched_pool(monkeypatch):
    """Flower's pool with the replacement installed for this test only; ray.get / ray.wait / ray.kill scripted."""
    import ray
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool

    from fedot_apps.ray_workers import replace_dead_actors

    for name in ("fetch_result_and_return_actor_to_pool", "add_actor_back_to_pool", "submit"):
        current = getattr(BasicActorPool, name)  # another test's ServerApp may have installed it already
        monkeypatch.setattr(BasicActorPool, name, getattr(current, "__wrapped__", current))
    script = {"outcome": {}, "room": True, "killed": []}

    def get(future):
        raise script["outcome"][future]

    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(ray, "wait", lambda refs, timeout: (refs if script["room"] else [], []))
    monkeypatch.setattr(ray, "kill", lambda actor: script["killed"].append(actor.name))
    original = BasicActorPool.fetch_result_and_return_actor_to_pool
    assert replace_dead_actors()
    assert BasicActorPool.fetch_result_and_return_actor_to_pool is not original
    installed = BasicActorPool.fetch_result_and_return_actor_to_pool
    assert replace_dead_actors() and BasicActorPool.fetch_result_and_return_actor_to_pool is installed  # once
    return BasicActorPool, script, ray


def test_a_dead_actor_is_swapped_for_a_started_one_and_a_failing_task_keeps_its_actor(patched_pool):
    cls, script, ray = patched_pool
    pool = _Pool([])
    pool.num_actors = 2  # both busy: one is about to die
    pool._future_to_actor = {"f-dead": _Actor("old-dead"), "f-task": _Actor("old-ok")}
    script["outcome"].update({"f-dead": ray.exceptions.ActorDiedError(), "f-task": ValueError("the app raised")})
    with pytest.raises(ray.exceptions.ActorDiedError):
        cls.fetch_result_and_return_actor_to_pool(pool, "f-dead")
    cls.add_actor_back_to_pool(pool, "f-dead")  # what process_message's error path does next
    assert [a.name for a in pool.pool] == ["new-1"] and pool.num_actors == 2  # swapped, not added
    with pytest.raises(ValueError):
        cls.fetch_result_and_return_actor_to_pool(pool, "f-task")
    cls.add_actor_back_to_pool(pool, "f-task")
    assert [a.name for a in pool.pool] == ["new-1", "old-ok"] and pool.made == 1  # a healthy actor is kept


def test_without_room_for_a_new_worker_the_pool_shrinks_and_submit_waits_or_says_why(patched_pool):
    import threading

    cls, script, ray = patched_pool
    script["room"] = False  # the dead worker's raylet is gone with its CPU
    pool = _Pool([_Actor("survivor")])
    pool.num_actors = 2
    pool._future_to_actor = {"f-dead": _Actor("on-lost-node")}
    script["outcome"]["f-dead"] = ray.exceptions.ActorDiedError()
    with pytest.raises(ray.exceptions.ActorDiedError):
        cls.fetch_result_and_return_actor_to_pool(pool, "f-dead")
    cls.add_actor_back_to_pool(pool, "f-dead")
    assert script["killed"] == ["new-1"] and pool.num_actors == 1 and [a.name for a in pool.pool] == ["survivor"]
    assert "f-dead" not in pool._future_to_actor

    def run(actor, *_):
        return f"future-on-{actor.name}"

    first = cls.submit(pool, run, (None, None, "0", None))  # takes the only actor
    assert first == "future-on-survivor" and pool.pool == []
    got = []
    waiter = threading.Thread(target=lambda: got.append(cls.submit(pool, run, (None, None, "1", None))))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # a second engine thread waits for the busy actor instead of failing
    cls.add_actor_back_to_pool(pool, first)
    waiter.join(5)
    assert got == ["future-on-survivor"]
    pool.num_actors, pool.pool = 0, []
    with pytest.raises(RuntimeError, match="no Ray worker is left.*fedot sim --resume"):
        cls.submit(pool, run, (None, None, "2", None))


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_a_lost_raylet_is_survived(tmp_path):
    """`bench/ray_cluster.py` on a Ray head and a second raylet (this machine), `fedot sim` joined through
    RAY_ADDRESS, 4 data owners on one worker per raylet. A worker of the head is SIGKILLed while it trains in round 2:
    it is replaced (its raylet has room). The second raylet is SIGKILLed in round 3: its worker cannot be replaced
    (no free CPU left) and the pool shrinks. Each time at most the data owner in training is lost; the rounds after
    get all 4 replies, and the run completes. (Flower 1.41 alone reuses a dead actor: every later Message it gets
    fails, bench/results/crash.json.)"""
    out = tmp_path / "cluster"
    proc = subprocess.run([sys.executable, "bench/ray_cluster.py", "--out", str(out), "--json", str(out / "r.json"),
                           "--rounds", "4", "--kill-worker-after", "1", "--kill-after", "2"],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "FEDOT_WORKER_START_S": "15"})  # a replacement starts within seconds here
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((out / "r.json").read_text())
    assert record["exit"] == 0 and record["status"] == "finished:completed", record["tail"]
    assert set(record["workers_seen"]) == set(record["nodes"].values())  # data owners ran on both raylets
    assert record["worker_killed"] and record["killed_at_s"] > record["worker_killed"]["at_s"]
    assert record["workers_replaced"] >= 1 and record["workers_lost"] >= 1
    rows = record["rounds"]
    assert [r["round"] for r in rows] == [1, 2, 3, 4] and rows[0]["accepted"] == 4
    for row in rows[1:3]:  # the rounds of the two kills
        assert row["accepted"] + len(row["rejected"]) == 4 and len(row["rejected"]) <= 1
        assert all("Actor" in reason or "timed out" in reason for reason in row["rejected"])
    assert rows[3]["accepted"] == 4  # the head's worker serves every data owner afterwards
    assert not raylets_left(record)


def raylets_left(record) -> list[int]:
    """Raylet processes still running for this cluster's head (the bench stops them all)."""
    import psutil

    node_ids = set(record["nodes"].values())
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any(f"--node_id={n}" in " ".join(p.info["cmdline"] or []) for n in node_ids)]

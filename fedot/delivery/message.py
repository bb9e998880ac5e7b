"""``message`` delivery: the emulator travels inside Flower Messages, once per node, in bounded chunks.

Before round 1 the model owner asks every node what it holds of the artifact (``status``); a node that already has
it verified in its own cache (an earlier run) receives nothing. The others receive the artifact's files as a
sequence of ``query`` Messages of at most ``emulator-chunk-mb`` each (``chunk``: pieces of files, each a file name,
an offset and the bytes as one uint8 Array, which Flower 1.41 splits further into 5 MB ``ArrayChunk`` objects on the
wire; small files share one Message). The last Message asks the node to ``finish``: it checks the manifest's hash
against the id the owner sent and every file against the manifest (:class:`~fedot.delivery.store.NodeStore`). All
nodes get chunk k before any gets chunk k+1, so the SuperLink holds at most one chunk per node at a time and neither
side ever materialises a multi-GB Message. A node that held part of the artifact (an interrupted earlier delivery)
is sent only the rest, and a node that holds an earlier version of the emulator (per-block layout,
:mod:`fedot.emulator.shards`) is sent only the files that changed: the ``status`` Message lists the new manifest's
file hashes and the node starts the new artifact from the identical files it holds (``NodeStore.seed``). The
``finish`` Message may name versions the node can delete once the new one is verified (``drop``). A deployed SuperNode
starts a ClientApp process per Message, so fewer, larger chunks are faster there (``docs/deployment.md``).

A node that fails (an error reply, a verification failure, no reply within the timeout) is recorded with its reason
and is sent nothing more in this delivery; until a later one succeeds its training replies are rejected with the
reason "emulator not delivered", never trained on something else. The next time it is sampled the owner delivers
again (:meth:`fedot.delivery.rollout.Rollout.refresh`), and the ``status`` exchange sends only what it still lacks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from ..emulator.artifact import MANIFEST, ArtifactError
from ..reply_origin import destinations, reply_node
from .store import NodeStore

QUERY = "query"
RECORD = "delivery"  # the ConfigRecord that marks a delivery Message (and its reply)


def _message(node: int, op: dict, pieces: list[bytes] = ()) -> Message:
    content = {RECORD: ConfigRecord(op)}
    if pieces:
        content["chunk"] = ArrayRecord({str(i): Array(np.frombuffer(b, dtype=np.uint8)) for i, b in enumerate(pieces)})
    return Message(RecordDict(content), dst_node_id=node, message_type=QUERY)


def _exchange(grid, messages: dict[int, Message], timeout: float | None) -> dict[int, dict | str]:
    """Send one Message per node; each node's reply record, or the reason it has none."""
    out: dict[int, dict | str] = {}
    sent: dict[str, int] = {}
    for reply in grid.send_and_receive(list(messages.values()), timeout=timeout):
        sent = sent or destinations(messages.values())  # the push has set the ids by the first reply
        node = reply_node(reply, sent)
        if node not in messages:
            continue  # not an answer to this exchange
        if reply.has_error():
            out[node] = f"error reply: {reply.error.reason}"
        elif RECORD not in reply.content.config_records:
            out[node] = "reply without a delivery record"
        else:
            out[node] = dict(reply.content.config_records[RECORD])
    for node in messages:
        out.setdefault(node, "no reply within the timeout")
    return out


def _plan(held: dict[str, int], sizes: dict[str, int], budget: int) -> tuple[tuple, bool]:
    """A node's next pieces (file, offset, length), at most ``budget`` bytes in all, small files packed together;
    and whether it holds the whole artifact after them. ``held`` is -1 for a file it has nothing of."""
    pieces, after = [], dict(held)
    for name, size in sizes.items():
        start = max(held[name], 0)
        if held[name] >= 0 and start >= size:
            continue
        if budget <= 0:
            break
        n = min(size - start, budget)
        pieces.append((name, start, n))
        after[name], budget = start + n, budget - n
    return tuple(pieces), all(after[f] == size for f, size in sizes.items())


def send(grid, nodes: list[int], artifact_dir: Path, manifest: dict, chunk_bytes: int,
         timeout: float | None = None, report=print, drop: tuple[str, ...] = ()) -> dict:
    """Deliver the artifact to every node that lacks it (only the files it lacks); returns the delivery record.
    ``drop``: artifact ids each node deletes once this one is verified."""
    t0, aid = time.perf_counter(), manifest["id"]
    files = [*sorted(manifest["files"]), MANIFEST]
    sizes = {f: (artifact_dir / f).stat().st_size for f in files}
    total = sum(sizes.values())
    nodes_record = {str(n): {"bytes": 0, "messages": 0} for n in nodes}
    pending: dict[int, dict] = {}
    status = {"op": "status", "artifact-id": aid, "files": json.dumps(manifest["files"])}
    for node, answer in _exchange(grid, {n: _message(n, status) for n in nodes}, timeout).items():
        if isinstance(answer, str):
            nodes_record[str(node)]["error"] = answer
        elif answer.get("complete"):
            nodes_record[str(node)]["cached"] = True
        else:
            pending[node] = {f: int(answer.get(f"held:{f}", -1)) for f in files}
            nodes_record[str(node)]["reused"] = int(answer.get("reused", 0))
    reused = sum(r.get("reused", 0) for r in nodes_record.values())
    report(f"emulator delivery: {len(pending)} of {len(nodes)} data owners need it ({total / 2**20:,.0f} MiB, "
           f"chunks of {chunk_bytes / 2**20:,.0f} MiB" + (f"; each already holds {reused / len(pending) / 2**20:,.0f} "
                                                         "MiB of it, in files of an earlier version)" if reused
                                                         else ")"))
    while pending:
        messages, plans, data = {}, {}, {}
        for node, held in pending.items():
            plans[node] = pieces, finish = _plan(held, sizes, chunk_bytes)
            for piece in pieces:  # read once for all nodes that need the same piece
                if piece not in data:
                    with open(artifact_dir / piece[0], "rb") as fh:
                        fh.seek(piece[1])
                        data[piece] = fh.read(piece[2])
            op = {"op": "chunk", "artifact-id": aid, "files": [p[0] for p in pieces],
                  "offsets": [p[1] for p in pieces], "finish": finish, **({"drop": list(drop)} if drop else {})}
            messages[node] = _message(node, op, [data[p] for p in pieces])
        for node, answer in _exchange(grid, messages, timeout).items():
            rec, (pieces, finish) = nodes_record[str(node)], plans[node]
            rec["messages"] += 1
            if isinstance(answer, str):
                rec["error"] = answer
                del pending[node]
                continue
            rec["bytes"] += sum(p[2] for p in pieces)
            if finish:
                rec["verified"] = bool(answer.get("complete"))
                del pending[node]
            else:
                pending[node].update({p[0]: int(answer.get(f"held:{p[0]}", 0)) for p in pieces})
        del data, messages
    failed = {n: r["error"] for n, r in nodes_record.items() if "error" in r}
    for node, reason in failed.items():
        report(f"emulator delivery to node {node} failed: {reason}")
    return {"mode": "message", "artifact_id": aid, "artifact_bytes": total, "chunk_bytes": chunk_bytes,
            "bytes_sent": sum(r["bytes"] for r in nodes_record.values()),
            "bytes_reused": reused, "seconds": time.perf_counter() - t0,
            "nodes": nodes_record, "failed": failed}


def ask_profiles(grid, nodes: list[int], timeout: float | None = None) -> dict[int, dict | str]:
    """What each node says of the emulator it can hold (its node config's ``tier`` / ``memory-gb``), or why it said
    nothing; asked before delivery when the run has emulator tiers (:mod:`fedot.emulator.tiers`)."""
    return _exchange(grid, {n: _message(n, {"op": "profile"}) for n in nodes}, timeout)


def _profile(store: NodeStore, op: dict, _pieces, node_config: dict) -> dict:
    return {k: node_config[k] for k in PROFILE_KEYS if k in node_config}


def _status(store: NodeStore, op: dict, _pieces, _node_config) -> dict:
    aid = str(op["artifact-id"])
    if store.get(aid) is not None:
        return {"complete": True}
    files = json.loads(str(op.get("files", "{}")))
    if not isinstance(files, dict):
        raise ArtifactError("a delivery status Message whose file list is not a mapping of names to sha256")
    reused = store.seed(aid, {str(k): str(v) for k, v in files.items()})
    return {**{f"held:{name}": size for name, size in store.held(aid).items()}, "reused": reused}


def _chunk(store: NodeStore, op: dict, pieces: list[bytes], _node_config) -> dict:
    aid, files, offsets = str(op["artifact-id"]), list(op.get("files", [])), list(op.get("offsets", []))
    if not len(files) == len(offsets) == len(pieces):
        raise ArtifactError(f"a delivery chunk names {len(files)} files and {len(offsets)} offsets for "
                            f"{len(pieces)} pieces")
    reply = {f"held:{f}": store.write(aid, str(f), int(o), b) for f, o, b in zip(files, offsets, pieces)}
    if op.get("finish"):
        store.finish(aid)
        reply["complete"] = True
        for old in op.get("drop", []):
            if str(old) != aid:
                store.drop(str(old))
    return reply


OPS = {"profile": _profile, "status": _status, "chunk": _chunk}
PROFILE_KEYS = ("tier", "memory-gb", "partition-id", "num-partitions")


def handle(msg: Message, store: NodeStore, node_config: dict | None = None) -> Message:
    """A node's answer to one delivery Message (raises with the reason on anything it cannot accept)."""
    if RECORD not in msg.content.config_records:
        raise ArtifactError("a query Message without a delivery record")
    op = dict(msg.content.config_records[RECORD])
    if op.get("op") not in OPS:
        raise ArtifactError(f"unknown delivery operation {str(op.get('op'))[:40]!r}; expected one of {sorted(OPS)}")
    pieces = []
    if "chunk" in msg.content.array_records:
        record = msg.content.array_records["chunk"]
        pieces = [record[str(i)].numpy().tobytes() for i in range(len(record))]
    reply = OPS[op["op"]](store, op, pieces, dict(node_config or {}))
    return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)

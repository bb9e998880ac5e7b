"""Every reply of a round kept on the owner's disk (``keep-replies``): an audit trail, and the input of a replay.

What a data owner sent is what decides a round, so a run can keep it: ``<run>/replies/round-<r>/`` holds the global
adapter the round started from (``global.safetensors``) and one file per reply in arrival order, ``<i>.json`` (the
node it speaks for, its metric and config records, or its error) beside ``<i>.<record>.safetensors`` (each of its
array records). Nothing is interpreted here: a malformed or hostile reply is written as it came (what cannot be read
is recorded as unreadable), and it is validated when it is replayed, exactly as in the run.

A replay (:mod:`strategies.replay`) feeds a round's replies to the strategy again under another aggregation rule.
In round 1 every data owner trained from the same initial adapter, so its replies do not depend on the rule: the
rules compared on them are compared on *identical* updates (paired), and replaying the run's own rule gives the run's
own adapter. In a later round the replies depended on the adapter the run's rule made, so a replay says what another
rule would make of these replies, not what a run under that rule would have done. The files hold adapter tensors of
every data owner: the owner received them anyway, but they are as private as the updates themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..aggregation.average import declared_bytes
from ..reply_origin import destinations, reply_node

GLOBAL = "global.safetensors"


def round_dir(run_dir: str | Path, server_round: int) -> Path:
    return Path(run_dir) / "replies" / f"round-{server_round}"


def keeping(replies: Iterable, run_dir: str | Path, server_round: int, reference: dict[str, torch.Tensor],
            pushed: list) -> Iterator:
    """Pass ``replies`` through unchanged (a streaming grid stays streaming), writing each one first; ``pushed``:
    the round's Messages (their ids, set when pushed, attribute a reply the SuperLink wrote in a node's place)."""
    folder = round_dir(run_dir, server_round)
    if folder.exists():  # a resumed round is re-run whole: its replies are the ones that count
        for f in folder.iterdir():
            f.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    _save(reference, folder / GLOBAL)
    sent: dict[str, int] = {}
    most = 2 * sum(t.numel() * t.element_size() for t in reference.values()) + 2**20
    for i, msg in enumerate(replies):
        sent = sent or destinations(pushed)
        write_reply(folder, i, msg, reply_node(msg, sent), most)
        yield msg


def write_reply(folder: Path, i: int, msg, node: int, most: int) -> None:
    """One reply as it came; one declaring more tensor bytes than ``most`` is not decoded (validation, which reads
    the same metadata first, never decodes it either) and is recorded as too large."""
    record: dict = {"node": node}
    if msg.has_error():
        record["error"] = {"code": int(msg.error.code), "reason": str(msg.error.reason)}
    else:
        try:
            content = msg.content
            size = sum(declared_bytes(arrays) for arrays in content.array_records.values())
            if size > most:
                raise ValueError(f"declares {size} tensor bytes, more than {most}: not decoded, not kept")
            record["metrics"] = {k: dict(v) for k, v in content.metric_records.items()}
            record["configs"] = {k: dict(v) for k, v in content.config_records.items()}
            record["arrays"] = []
            for name, arrays in content.array_records.items():
                _save(arrays.to_torch_state_dict(), folder / f"{i}.{name}.safetensors")
                record["arrays"].append(name)
        except Exception as e:  # what cannot be read cannot be replayed; the run rejected it as unreadable too
            record = {"node": node, "unreadable": f"{type(e).__name__}: {e}"[:300]}
    (folder / f"{i}.json").write_text(json.dumps(record, default=str) + "\n")


def read_round(run_dir: str | Path, server_round: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(the global adapter the round started from, its replies in arrival order as written, with ``arrays``: record
    name -> tensors)."""
    folder = round_dir(run_dir, server_round)
    if not (folder / GLOBAL).exists():
        raise FileNotFoundError(f"{folder} holds no kept replies: the run did not set keep-replies = true (or round "
                                f"{server_round} never ran); re-run it with --keep-replies")
    replies = []
    for i in sorted(int(f.stem) for f in folder.glob("*.json") if f.stem.isdigit()):  # only the replies' own
        record = json.loads((folder / f"{i}.json").read_text())
        record["arrays"] = {name: _load(folder / f"{i}.{name}.safetensors") for name in record.get("arrays", [])}
        replies.append(record)
    return _load(folder / GLOBAL), replies


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors sorts names; the order they came in is kept too (DP clips by position, Flower keeps order)."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"order": json.dumps(list(tensors))})


def _load(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as f:
        order = json.loads((f.metadata() or {}).get("order", "[]"))
    tensors = load_file(path)
    return {k: tensors[k] for k in order} if sorted(order) == sorted(tensors) else tensors

"""Which data owner a reply speaks for: its sender, or the node of the Message it answers.

A node's reply carries its own node id as ``src_node_id``. A reply the SuperLink writes in a node's place does not:
when a node misses its heartbeats (a SuperNode killed, a machine gone) or a Message expires, Flower 1.41 answers with
an error whose ``src_node_id`` is the SuperLink's own id, 0 (``flwr/server/superlink/linkstate/utils.py``,
``NODE_UNAVAILABLE``). Attributing such a reply to node 0 would log a failure for a node that does not exist and
count the real one as silent. Every reply names the Message it answers (``reply_to_message_id``), and a pushed
Message knows its id and destination, so the node is recovered from that.
"""

from __future__ import annotations

from collections.abc import Iterable


def destinations(sent: Iterable) -> dict[str, int]:
    """Message id -> destination node of pushed Messages (or their metadata); call after the push set the ids."""
    out = {}
    for m in sent:
        meta = getattr(m, "metadata", m)
        if meta.message_id:
            out[meta.message_id] = meta.dst_node_id
    return out


def reply_node(reply, sent: dict[str, int]) -> int:
    """The node ``reply`` answers for (``sent``: :func:`destinations` of the Messages it may answer)."""
    return sent.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)

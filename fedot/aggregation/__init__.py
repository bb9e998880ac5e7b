"""The model owner's side of a round, without Flower: checking and bounding replies, the aggregation rules
(Flower's own, registered by name), streaming averaging, the round's learning rate.

The Flower strategy (``strategies/``) only moves messages and calls into here, so every decision about adapters can
be tested and reused in-process.
"""

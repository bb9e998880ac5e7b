"""The data owner: what it trains (``tuning``), how (``train``), on which share of the data (``partition``), and
one federated round with the cache a worker keeps (``worker``)."""

"""A federated run's settings (``config``), its records as it goes (``log``), what it leaves behind (``report``,
``results``), comparisons of runs (``compare``), and the ``fedot sim`` driver (``sim``, ``sims``)."""

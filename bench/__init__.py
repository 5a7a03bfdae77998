"""tickwire's fan-out benchmark: ``python -m bench`` (``make bench``).

Layout:

* :mod:`bench.feed`: the fake upstream, a fixed-rate schedule of messages
  stamped with their event time, the same in every server under test.
* :mod:`bench.servers`: one process per server under test (tickwire, the
  floor peer of :mod:`bench.floor`, and the ``websockets`` peer), driven over
  stdin/stdout by the harness; ``peers/node/server.js`` is the Node.js ``ws``
  peer speaking the same control protocol.
* :mod:`bench.loadgen`: client processes (picows) that connect, subscribe,
  count deliveries and sample latency.
* :mod:`bench.run`: the workloads W1..W7 and the measurements;
  :mod:`bench.report` writes ``RESULTS.md`` and the plots, judging the
  issue's targets with :mod:`bench.targets`; :mod:`bench.pyspy` writes
  ``PROFILE.md`` (``--profile``).
* :mod:`bench.books` (W6, order books from the capture that :mod:`bench.capture`
  completes with a partial depth stream) and :mod:`bench.storm` (W7, a
  reconnect storm with resume) run ``tickwire serve`` processes of
  :mod:`bench.procs`, with the connections of :mod:`bench.listeners`;
  :mod:`bench.sections` renders their RESULTS.md sections.
"""

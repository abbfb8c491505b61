"""Baseline peers for the benchmark suite: what users would otherwise pick.

``ws_broadcast`` is a plain ``websockets`` server using ``websockets.broadcast()``;
``sio_server`` is the same social fan-out on python-socketio (one node, or several
sharing a Redis manager). ``dialects`` holds the load generator's connection classes
that speak to them. Install with ``pip install -e '.[bench]'``.
"""

"""``hubbub loadtest``: many simulated users on real WebSocket connections.

Modules: :mod:`cli` (the subcommand), :mod:`config` (one run's settings), :mod:`graph`
(the generated social graph), :mod:`tokens`, :mod:`connection` (one user's socket),
:mod:`recorder` and :mod:`histogram` (deliveries, latency, errors, exactly-once),
:mod:`worker` (one process's slice and the scenarios), :mod:`pacing`, :mod:`workers`
(the processes and the merge of their results), :mod:`report` and :mod:`plot`.
"""

"""Pretraining (docs/protocol.md §3): strategies by name (distribute), the one training loop
(loop), schedule, optimiser, weight decay and averaging (optimization), the pretraining task
(trainer)."""

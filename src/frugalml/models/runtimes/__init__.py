"""Runtimes: how a model is loaded, run, saved and sized, one module per engine.

A runtime is an object registered under the engine name it gives models (``Model.engine``,
the ``engine`` of a saved manifest) with five methods:

- ``find(folder) -> Path | None``: the weights in ``folder`` it can load (None: none);
- ``load(path, *, base, device, exact) -> Model``: a model from what ``find`` returned
  (``exact``: a folder frugal saved, whose shapes may differ from its config: pruned);
- ``run(model, enc) -> ndarray``: raw outputs of one tokenized batch (``enc``: numpy int64
  arrays by input name), (batch, seq, dim) token states or (batch, dim) rows;
- ``save(model, folder) -> list[str]``: write the weights and ``config.json``; the relative
  paths written;
- ``size_bytes(model) -> int``: bytes of the weights as ``save`` writes them.

What a runtime caches between batches (a session, input names) lives in ``model.state(...)``,
which ``Model.evolve`` never hands to a copy. Adding a runtime is one module here that calls
``register`` (plus its name in ``BUILTIN`` so it is imported on first use) and the passes
that produce it.
"""

from frugalml.models.registry import BUILTIN, RUNTIMES, all_runtimes, get, register, threads_for

__all__ = ["BUILTIN", "RUNTIMES", "all_runtimes", "get", "register", "threads_for"]

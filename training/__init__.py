"""virtualfocus.training: full models in PyTorch — registry, losses, datasets, trainer, checkpoints.

This package file imports nothing heavy, so ``import virtualfocus.training`` works on a core install without
torch; the submodules need the ``train`` extra (torch):

* :mod:`.registry` — the named variants of every reference system (``create_model``, ``get_spec``,
  ``list_models``, ``register``); their spec classes are in :mod:`.specs`, the registry machinery shared with
  the compression recipes in :mod:`._registry`; torch-free until a network is built;
* :mod:`.nets` — network definitions (``nets.unet.UNetGenerator`` is the product generator);
* :mod:`.losses`, :mod:`.datasets`, :mod:`.systems`, :mod:`.trainer` (``train``), :mod:`.config`
  (``TrainConfig``), :mod:`.checkpoint` (``load_run``), :mod:`.cli` (``virtualfocus train``);
* :mod:`.runlog` — a run's ``log.csv`` read back (validation curve, steps, minutes, sessions); torch-free.
"""

__all__ = ["checkpoint", "cli", "config", "datasets", "losses", "nets", "registry", "runlog", "specs", "systems", "trainer"]

"""The hooks a segbench plugin implements.

A plugin is a module (or object) with functions named like the hooks below, decorated with
``segbench.hookimpl``. Each hook receives a ``register`` callback::

    register(name, factory, *, config=ConfigClass, aliases=())

``config`` is a frozen attrs class: the recipe section for the component (without its ``name:``
key) is structured against it strictly, so unknown keys, wrong types and out-of-range values are
errors reported with their key path. ``factory(config, **context)`` builds the component; the
context keyword arguments each kind receives are listed in its hook's documentation.
Third-party packages expose their plugin module through the ``segbench`` entry-point group.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("segbench")


@hookspec
def segbench_register_models(register):
    """Register segmentation models.

    ``factory(config, *, num_classes: int) -> torch.nn.Module``. The module maps a float image batch
    ``(N, 3, H, W)`` to logits ``(N, num_classes, H, W)`` at the input resolution, for any H and W.
    It may set ``module.segbench_init`` (a short string such as ``"random"`` or
    ``"imagenet:/path/to/weights.pth"``) to record how its weights were initialised; the run saves
    it. Sub-module names (``backbone``, ``head`` ...) are what ``optimizer.groups`` refers to.
    """


@hookspec
def segbench_register_datasets(register):
    """Register datasets.

    ``factory(config) -> segbench.data.SegmentationDataset``: a map-style dataset whose items are
    ``(image, mask)`` with ``image`` a ``uint8`` tensor ``(3, H, W)`` and ``mask`` a ``uint8``
    tensor ``(H, W)`` of train ids, ``info.ignore_index`` marking pixels that are not scored. Its
    ``info`` (``segbench.data.DatasetInfo``) names the classes and their colours. The recipe's
    ``data.dataset`` section is merged with each role's section (``data.train``, ``data.select``,
    ``data.report``) before structuring, so one config class holds both the shared keys (a root
    folder) and the per-role keys (a split).
    """


@hookspec
def segbench_register_losses(register):
    """Register training losses.

    ``factory(config, *, ignore_index: int, class_weights: torch.Tensor | None) -> torch.nn.Module``
    whose forward takes logits ``(N, C, H, W)`` and int64 targets ``(N, H, W)`` and returns a
    scalar. Pixels equal to ``ignore_index`` must not contribute.
    """


@hookspec
def segbench_register_schedulers(register):
    """Register learning-rate schedulers.

    ``factory(config, *, optimizer, total_iterations: int, iterations_per_epoch: int)`` returns an
    object with ``step_iteration()`` (called after every optimizer step),
    ``step_epoch(metric: float | None)`` (called after every selection evaluation with its mIoU),
    ``state_dict()`` and ``load_state_dict(state)``.
    """


@hookspec
def segbench_register_strategies(register):
    """Register training strategies (how a run's weights start).

    ``factory(config) -> segbench.engine.strategy.Strategy``: ``upstream(recipe)`` returns the
    resolved recipe of a stage that must complete first (or ``None``), and
    ``prepare(model, *, upstream_run)`` initialises the model, given that stage's run directory.
    """


@hookspec
def segbench_register_optimizers(register):
    """Register optimizers.

    ``factory(config, *, param_groups: list[dict]) -> torch.optim.Optimizer``. The groups are
    already split by ``optimizer.groups`` (each a dict with ``params`` and optional ``lr``); the
    factory applies its own defaults from ``config``.
    """


@hookspec
def segbench_register_class_weightings(register):
    """Register class weightings (per-class loss weights computed from the training labels).

    ``factory(config)`` returns a callable ``histogram -> weights``: ``histogram`` is a float64
    tensor ``(C,)`` of labelled pixel counts per class over the training set (ignored pixels
    excluded), the result a float32 tensor ``(C,)`` of positive weights.
    """


@hookspec
def segbench_register_loggers(register):
    """Register loggers (where a run's metrics go: files, TensorBoard, an experiment tracker).

    ``factory(config, *, run_dir: pathlib.Path) -> segbench.engine.loggers.Logger``, called on the
    main process only. The logger receives ``start(RunStart)`` (the resolved recipe, its flattened
    hyper-parameters, the class names and the checkpoint step training continues from: drop anything
    logged for a later step), ``train(TrainRecord)``, ``evaluate(EvalRecord, panels)`` (``panels``:
    image | ground truth | prediction images, as many as its ``panels`` attribute asks for),
    ``flush()`` before each checkpoint and ``close()``. A recipe chooses loggers with
    ``logging: [{name: ...}, ...]``; without that list a run uses every logger registered with
    ``by_default=True`` (``register(name, factory, config=..., by_default=True)``). An exception
    in a logger switches it off with one warning; training goes on.
    """

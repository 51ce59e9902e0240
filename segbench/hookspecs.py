"""The hooks a segbench plugin implements.

A plugin is a module (or object) with functions named like the hooks below, decorated with
``segbench.hookimpl``. Each hook receives a ``register`` callback::

    register(name, factory, *, config=ConfigClass, aliases=(), smoke=None, **kind_options)

``config`` is a frozen attrs class: the recipe section for the component (without its ``name:``
key) is structured against it strictly, so unknown keys, wrong types and out-of-range values are
errors reported with their key path. ``factory(config, **context)`` builds the component; the
context keyword arguments each kind receives are listed in its hook's documentation.

``smoke`` (any kind) is a function ``config -> config`` giving the component's variant for
``segbench run --smoke`` (a few iterations on tiny generated data): shrink what makes it slow or
what needs files a smoke run does not have (crop sizes, warm-up lengths, weight files). It is
applied only after the recipe as written has been validated, to that recipe's config. It may return
``segbench.registry.Substitute(name, config)`` to use another registered component of the same
kind (a dataset on disk replaced by a generated one). Without ``smoke`` the config is kept as is.
The keyword options some kinds take (``param_groups``, ``for_checkpoint``, ``final``) are listed
in their hook's documentation; any other keyword is an error naming the plugin.

A module-level function whose name starts with ``segbench_`` must be one of the hooks below,
decorated with ``@segbench.hookimpl``; a misspelled hook name is an error, never ignored.
Third-party packages expose their plugin module through the ``segbench`` entry-point group.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("segbench")


@hookspec
def segbench_register_models(register):
    """Register segmentation models.

    ``factory(config, *, num_classes: int) -> torch.nn.Module``. The module maps a float image batch
    ``(N, 3, H, W)`` to one tensor of logits ``(N, num_classes, H, W)`` at the input resolution, for
    any H and W (not a dict or tuple: unwrap torchvision's ``{"out": ...}``). Before training, the
    built model runs once on a ``(1, 3, 32, 64)`` batch in eval mode without gradients; any other
    output is refused naming the plugin. It may set ``module.segbench_init`` (a short string such as
    ``"random"`` or ``"imagenet:/path/to/weights.pth sha256:…"``) to record how its weights were
    initialised; the run saves it. Sub-module names (``backbone``, ``head`` ...) are what an
    optimizer's parameter groups refer to.

    ``for_checkpoint`` (optional): ``config -> config`` for building the model when a checkpoint
    supplies every weight (``evaluate``, ``predict``, ``compare --speed``): turn off reading
    pretrained weight files that need not exist where a trained run is inspected.
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

    Two key names are shared with the core: a dataset that comes in named splits takes the split
    as ``split`` (``segbench evaluate --split NAME`` sets it in the report role's section), and one
    that can keep part of a split does so with ``subset`` (which ``--split`` drops, to score the
    whole split); ``segbench compare`` shows both. A dataset read from disk usually declares a
    ``smoke`` variant that substitutes a generated dataset (see ``segbench.registry.Substitute``).

    A training process that reads its own data (``trainer.num_workers: 0``) keeps a small split's items
    after their first read (up to 1 GiB) instead of reading them every epoch; a dataset whose items should
    be read anew each time sets the class attribute ``keep_decoded = False``.

    A factory whose data is not on this machine at all (its root folder missing) raises
    ``segbench.errors.DataUnavailableError``: ``emit-slurm`` then submits the job unchecked (its compute
    nodes may have the data) instead of refusing it; any other ``DataError`` is a mistake it refuses.
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

    ``default=True`` (optional) makes it the scheduler of recipes without a ``scheduler:`` section
    (the first registered one wins). A ``smoke`` variant should fit any warm-up into the two
    iterations of a smoke run.
    """


@hookspec
def segbench_register_strategies(register):
    """Register training strategies (how a run's weights start).

    ``factory(config) -> segbench.engine.strategy.Strategy``: ``upstream(recipe)`` returns the
    resolved recipe of a stage that must complete first (or ``None``), and
    ``prepare(model, *, upstream_run)`` initialises the model, given that stage's run directory.
    Optionally, ``check_upstream(plan, upstream_plan)`` raises ``segbench.errors.RecipeError`` when the stage
    cannot start from that one; it is called before any stage trains, so the mistake costs no training.

    ``default=True`` (optional) makes it the strategy of recipes without a ``strategy:`` section
    (the first registered one wins).
    """


@hookspec
def segbench_register_optimizers(register):
    """Register optimizers.

    ``factory(config, *, param_groups: list[dict]) -> torch.optim.Optimizer``. Each group is a dict
    with ``params``, ``name`` and, when set, ``lr`` and ``weight_decay``; the factory applies its
    own defaults from ``config`` to the rest.

    ``param_groups`` (optional): ``config -> {prefix: segbench.registry.GroupSettings(lr=...,
    weight_decay=...)}``, the sub-modules (``backbone``, ``head.decoder`` ...) whose parameters get
    their own group, in order; the parameters under no prefix form a last group. A prefix matching
    no parameter is an error at the optimizer's key path. Without it, all parameters form one group.
    """


@hookspec
def segbench_register_class_weightings(register):
    """Register class weightings (per-class loss weights computed from the training labels).

    ``factory(config)`` returns a callable ``histogram -> weights``: ``histogram`` is a float64
    tensor ``(C,)`` of labelled pixel counts per class over the training set (ignored pixels
    excluded), the result a float32 tensor ``(C,)`` of positive weights.
    """


@hookspec
def segbench_register_transforms(register):
    """Register augmentation and preprocessing steps (the recipe's ``data.train_transforms`` and
    ``data.eval_transforms`` lists of ``{name: ..., <options>}``).

    ``factory(config)`` returns a function ``(image, mask, generator, ignore_index) -> (image, mask)``:
    ``image`` ``(3, H, W)``, ``mask`` ``(H, W)`` of train ids, ``generator`` a ``torch.Generator``
    that must be the only source of randomness (so items are reproducible for any number of
    workers), ``ignore_index`` the label for pixels a step invents (padding). Return a module-level
    function, a ``functools.partial`` of one, or an object: DataLoader workers receive it pickled.
    A step may raise ``segbench.errors.ConfigError([(key, message)])`` about one of its own keys;
    the key is reported under the step's path in the recipe.

    Images are ``uint8`` until the list's last step, which must be one registered with
    ``final=True``: it turns the image into the model's ``float32`` input (normalisation). A list
    that a recipe leaves out is the first-registered final step alone, with its defaults.
    """


@hookspec
def segbench_register_loggers(register):
    """Register loggers (where a run's metrics go: files, TensorBoard, an experiment tracker).

    ``factory(config, *, run_dir: pathlib.Path) -> segbench.engine.loggers.Logger``, called on the
    main process only. The logger receives ``start(RunStart)`` (the resolved recipe, its flattened
    hyper-parameters, the class names and the checkpoint step training continues from: drop anything
    logged for a later step), ``train(segbench.records.TrainStepRecord)``,
    ``evaluate(segbench.records.SelectionRecord, panels)`` (``panels``:
    image | ground truth | prediction images, as many as its ``panels`` attribute asks for),
    ``flush()`` before each checkpoint and ``close()``. A recipe chooses loggers with
    ``logging: [{name: ...}, ...]``; without that list a run uses every logger registered with
    ``default=True`` (``register(name, factory, config=..., default=True)``). An exception
    in a logger switches it off with one warning; training goes on.
    """

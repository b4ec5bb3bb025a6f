"""``weightless.compress``: the whole method on a user's model and data (simplify, then encode
layer by layer with retraining), in the shape PyTorch users know (``quantize_(model, config)``,
``compress_weights(model, dataset=...)``).
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

__all__ = ["compress"]


def compress(
    model: Any,
    train: Any,
    val: Any = None,
    config: Any = None,
    *,
    test: Any = None,
    loss: Any = None,
    metric: Any = None,
    device: Any = None,
    batch_fn: Any = None,
    progress: bool | None = None,
    log: Any = None,
) -> Any:
    """Simplify a trained ``model`` and encode it layer by layer with retraining (Algorithm 1).

    Args:
        model: a trained ``torch.nn.Module`` (not modified).
        train: training data: a ``DataLoader``, a map-style ``Dataset``, an ``(x, y)`` pair of
            arrays, or a :class:`~weightless.training.Task` (then ``val`` etc. come from it).
        val: validation data in the same forms; every choice (t, filter seeds) is made on it.
            It must not be data the model was trained on.
        config: a :class:`~weightless.pipeline.CompressConfig` (None: its defaults: every
            Linear/Conv weight at 10% nonzero, k = 16, automatic t, retraining on).
        test: optional held-out data, only reported.
        loss: ``loss(output, target)`` to train with (default cross-entropy).
        metric: ``metric(output, target)`` -> per-example error in [0, 1] (default top-1 error).
        device: where to train (e.g. "cuda"); the model is moved there. The codec stays numpy.
        batch_fn: turns one loader item into ``(inputs, target)``.
        progress: show progress (None: the config's setting).
        log: a callable taking one line of text (default: the "weightless" logger).

    Returns:
        A :class:`weightless.pipeline.encode.CompressResult`; ``result.tensors`` goes to
        :func:`weightless.save`, ``result.budget`` says how much of the error budget each stage
        spent.

    Raises:
        InputError: invalid config or data (checked before any training).
        ConstructionError: a filter could not be built.
    """
    import copy
    import logging

    from .encode import encode_with_retraining
    from .config import CompressConfig, EncodeConfig
    from ..simplify import LayerSelect, Recipe, simplify
    from ..training import as_task, evaluate

    if isinstance(val, (Recipe, LayerSelect)):  # compress(model, task, recipe[, encode_config])
        config = CompressConfig(recipe=val, encode=config if config is not None else EncodeConfig())
        val = None
    elif isinstance(config, EncodeConfig):
        config = CompressConfig(encode=config)
    config = CompressConfig() if config is None else config
    if not isinstance(config, CompressConfig):
        raise InputError(f"config must be a CompressConfig, got {type(config).__name__}")
    config.validate()
    say = log or logging.getLogger("weightless").info
    show = config.progress if progress is None else bool(progress)
    task = as_task(train, val, test, **{k: v for k, v in (("loss", loss), ("metric", metric), ("device", device),
                                                            ("batch_fn", batch_fn)) if v is not None})
    recipe = config.resolved_recipe().resolve(model)
    recipe.validate()
    if task.device is not None:
        model = copy.deepcopy(model).to(task.device)
    try:
        dense_val = evaluate(model, task, split="val")
    except InputError:
        raise
    except Exception as exc:  # the model cannot run on the data: say so before any training
        raise InputError(f"the model cannot be evaluated on the validation data: {type(exc).__name__}: {exc}") from exc
    say(f"model as given: validation error {dense_val:.2f}%")
    simplified = simplify(model, task, recipe, progress=show)
    spent = simplified.val_error - dense_val
    say(f"simplified: validation error {simplified.val_error:.2f}% ({spent:+.2f} pp)")
    tolerance, reference = None, None
    if config.max_error_increase is not None:
        reference = model
        tolerance = config.max_error_increase
        if spent > config.max_error_increase:
            say(f"WARNING: simplification alone spent {spent:.2f} pp of the {config.max_error_increase:.2f} pp budget; "
                "no t can meet it, so every layer will get t_max (raise max_error_increase, or keep more weights)")
    res = encode_with_retraining(simplified, task, config.encode, reference=reference, tolerance=tolerance,
                                 progress=show, log=say)
    res.budget = {
        "max_error_increase": config.max_error_increase,
        "dense_val_error": dense_val,
        "simplified_val_error": simplified.val_error,
        "encoded_val_error": res.val_error,
        "spent_simplify": spent,
        "spent_encode": res.val_error - simplified.val_error,
        "spent_total": res.val_error - dense_val,
        "within_budget": None if config.max_error_increase is None else res.val_error - dense_val <= config.max_error_increase,
    }
    return res

"""Batch normalisation's moving statistics: why a short run can answer one class for every slice.

In training, a batch-normalisation layer normalises with the batch's own mean and variance; at evaluation
it uses moving averages updated once per training step, ``mu <- m mu + (1 - m) mu_batch`` (the same for the
variance), starting from 0 and 1. With momentum ``m`` the average forgets with a time constant of about
``1 / (1 - m)`` steps (:func:`time_constant`), and after ``n`` steps it has moved ``1 - m**n`` of the way
from its start to the batches' statistics (:func:`share_travelled`). Keras' default 0.99 needs a few
hundred steps; a run of a few hundred steps in all evaluates with statistics that lag behind its weights.

The gradients never see the moving averages, so the momentum does not change the trained weights: only what
the model answers at evaluation. :func:`with_moving_statistics` shows it on a trained model: the same weights,
the moving statistics recomputed by replaying training batches with another momentum.
"""

from __future__ import annotations

from itertools import islice


def time_constant(momentum: float) -> float:
    """Steps over which a moving average with this momentum forgets (to 1/e): about ``1 / (1 - momentum)``."""
    return 1.0 / (1.0 - float(momentum))


def share_travelled(momentum: float, steps: int) -> float:
    """How far a moving average has moved from its start towards a constant target after ``steps`` updates:
    ``1 - momentum ** steps``."""
    return 1.0 - float(momentum) ** int(steps)


def batch_norm_layers(model) -> list:
    """Every batch-normalisation layer of a Keras model, nested models included."""
    import keras  # local: heavy dependency

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batch_norm_layers(layer))
    return found


def with_moving_statistics(model, batches, momentum: float, steps: int):
    """A copy of ``model`` with the same weights, whose batch-norm moving statistics are started again (mean 0,
    variance 1) and updated by ``steps`` training-mode forward passes over ``batches`` (an iterable of
    ``(images, labels)`` or of images, repeated if it runs out) with ``momentum``. No weight is trained."""
    import keras  # local: heavy dependency

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layers = batch_norm_layers(copy)
    for layer in layers:
        layer.momentum = float(momentum)
        layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(keras.ops.ones_like(layer.moving_variance))
    done = 0
    while done < steps:
        before = done
        for batch in islice(batches, steps - done):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            copy(images, training=True)
            done += 1
        if done == before:
            raise ValueError("the batches are empty")
    return copy

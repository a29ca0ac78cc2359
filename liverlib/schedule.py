"""Learning-rate schedules, for training runs and Hyperband trials alike.

* ``piecewise`` (the paper): ``learning_rate * lr_drop_factor ** (epoch // lr_drop_every)``, set once per epoch
  by a Keras callback;
* ``warmup-cosine``: a linear warm-up from 0 to ``learning_rate`` over the first epoch's steps, then a cosine
  decay to 0 at the end of the last epoch, set at every step (the optimiser's own schedule, so a resumed run
  continues it from the optimiser's step count).
"""

from __future__ import annotations

import math
from typing import Callable

from liverlib.config import RunConfig


def piecewise_lr(config: RunConfig) -> Callable[..., float]:
    """epoch (from 0) -> learning rate: ``learning_rate * lr_drop_factor ** (epoch // lr_drop_every)``.

    The returned function also takes Keras' current rate as a second argument (and ignores it), so it can
    be given to ``keras.callbacks.LearningRateScheduler`` as it is. A Hyperband trial passes its own factor
    and drop interval through ``config.replace``.
    """
    def schedule(epoch: int, lr: float | None = None) -> float:
        return float(config.learning_rate * config.lr_drop_factor ** (epoch // config.lr_drop_every))
    return schedule


def keras_learning_rate(config: RunConfig, steps_per_epoch: int):
    """What the optimiser is given: the starting rate (float) for ``piecewise``, which a callback then sets each
    epoch, or a step-wise Keras schedule for ``warmup-cosine``."""
    if config.lr_schedule == "piecewise":
        return float(config.learning_rate)
    import keras  # local: heavy dependency

    steps_per_epoch = max(int(steps_per_epoch), 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(steps_per_epoch * (config.epochs - 1), 1), warmup_target=float(config.learning_rate),
        warmup_steps=steps_per_epoch)


def learning_rate_at(config: RunConfig, epoch: float) -> float:
    """The rate at a (fractional) epoch, for figures: ``epoch`` 1.5 is the middle of the second epoch."""
    if config.lr_schedule == "piecewise":
        return piecewise_lr(config)(int(epoch))
    if epoch < 1:
        return float(config.learning_rate * epoch)
    progress = min((epoch - 1) / max(config.epochs - 1, 1), 1.0)
    return float(config.learning_rate * 0.5 * (1 + math.cos(math.pi * progress)))

"""The learning-rate schedule of the paper's recipe, for training runs and Hyperband trials alike."""

from __future__ import annotations

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

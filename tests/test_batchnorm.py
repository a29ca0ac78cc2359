"""Batch-norm moving statistics: the lag of a moving average, and replaying them on the same weights."""

import numpy as np
import pytest

from liverlib.batchnorm import share_travelled, time_constant, with_moving_statistics


def test_time_constant_and_share_travelled():
    assert time_constant(0.99) == pytest.approx(100)
    assert time_constant(0.9) == pytest.approx(10)
    assert share_travelled(0.9, 10) == pytest.approx(1 - 0.9 ** 10)
    assert share_travelled(0.99, 0) == 0.0


def test_replayed_statistics_follow_the_momentum_and_keep_the_weights():
    import keras

    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(keras.layers.BatchNormalization(name="bn")(inputs))
    model = keras.Model(inputs, outputs)
    x = np.full((8, 3), 5.0, np.float32)  # every batch has mean 5
    fast = with_moving_statistics(model, [x], momentum=0.5, steps=4)  # a list runs out: it is repeated
    slow = with_moving_statistics(model, [x], momentum=0.99, steps=4)
    np.testing.assert_allclose(fast.get_layer("bn").moving_mean.numpy(), 5 * share_travelled(0.5, 4), rtol=1e-5)
    np.testing.assert_allclose(slow.get_layer("bn").moving_mean.numpy(), 5 * share_travelled(0.99, 4), rtol=1e-5)
    for a, b in zip(fast.layers[-1].get_weights(), model.layers[-1].get_weights()):
        np.testing.assert_array_equal(a, b)  # the dense layer's weights are untouched
    assert model.get_layer("bn").momentum == 0.99 and float(model.get_layer("bn").moving_mean.numpy()[0]) == 0.0

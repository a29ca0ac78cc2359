"""Grad-CAM's shape and range, the overlay, and the pointing game on a known heat map (liverlib.explain)."""

import numpy as np
import pytest


def test_gradcam_shape_range_and_the_pointing_game():
    import keras

    from liverlib.explain import grad_cam, overlay, pointing_game, upsample
    from liverlib.model import build_modified_resnet50, last_conv_layer

    keras.utils.set_random_seed(0)
    model = build_modified_resnet50(4, 64, blocks=(1, 1, 1, 1))  # the quick profile's ResNet-14
    assert last_conv_layer(model) == "conv5_block1_out"  # found in the model: ResNet-50's is conv5_block3_out
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    probs, heat = grad_cam(model, x)
    assert probs.shape == (2, 4) and heat.shape == (2, 2, 2)  # conv5 is 1/32 of the input
    assert heat.min() >= 0 and heat.max() <= 1
    _, chosen = grad_cam(model, x, class_index=2)
    assert chosen.shape == heat.shape
    big = upsample(heat[0], 64)
    assert big.shape == (64, 64) and 0 <= big.min() and big.max() <= 1
    assert overlay(np.zeros((64, 64)), heat[0]).shape == (64, 64, 3)
    # the pointing game on a known heatmap: all mass in the top-left quarter
    h = np.zeros((8, 8))
    h[:4, :4] = 1.0
    mask = np.zeros((8, 8), bool)
    mask[:4, :] = True
    score = pointing_game(h, mask)
    assert score["mass_inside"] == pytest.approx(1.0) and score["hit"] and score["area"] == pytest.approx(0.5)
    assert pointing_game(h, ~mask)["mass_inside"] == pytest.approx(0.0)

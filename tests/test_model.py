"""The residual blocks against Keras' ResNet-50, the Table 1 head, weights loading, safe loading."""

import numpy as np
import pytest

import liverlib  # noqa: F401  (TensorFlow settings before import)
import keras
import tensorflow as tf

from liverlib.blocks import block_model
from liverlib.errors import LiverlibError
from liverlib.model import (LAST_CONV_LAYER, build_modified_resnet50, copy_weights_by_name, layer_table,
                            set_trainable_stages)

TOLERANCE = 1e-5  # float32 arithmetic in a different but equivalent order


@pytest.fixture(scope="module")
def keras_resnet():
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def ours():
    return build_modified_resnet50(4, 64)


def _randomise_bn(model, seed=0):
    """Give batch-norm layers non-trivial statistics, so the comparison exercises equation (2)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2.0, var.shape).astype("float32")])


@pytest.mark.parametrize("name,filters,stride,projection,in_channels,size", [
    ("conv2_block1", 64, 1, True, 64, 16),     # projection shortcut, no downsampling
    ("conv3_block1", 128, 2, True, 256, 16),   # projection shortcut with stride 2
    ("conv4_block3", 256, 1, False, 1024, 4),  # identity shortcut
])
def test_our_block_computes_what_keras_resnet50_computes(keras_resnet, name, filters, stride, projection,
                                                         in_channels, size):
    _randomise_bn(keras_resnet)
    block = block_model((size, size, in_channels), filters, stride, projection, name)
    assert copy_weights_by_name(keras_resnet, block) == (4 if projection else 3) * 2
    start = keras_resnet.get_layer(f"{name}_1_conv").input
    reference = keras.Model(start, keras_resnet.get_layer(f"{name}_out").output)
    x = np.random.default_rng(1).normal(size=(2, size, size, in_channels)).astype("float32")
    ours_out, ref_out = np.asarray(block(x)), np.asarray(reference(x))
    assert ours_out.shape == ref_out.shape
    assert np.abs(ours_out - ref_out).max() < TOLERANCE


def test_whole_backbone_equals_keras_resnet50(keras_resnet, ours):
    _randomise_bn(keras_resnet, seed=2)
    assert copy_weights_by_name(keras_resnet, ours) == 106
    backbone = keras.Model(ours.input, ours.get_layer(LAST_CONV_LAYER).output)
    x = np.random.default_rng(3).uniform(size=(2, 64, 64, 3)).astype("float32")
    assert np.abs(np.asarray(backbone(x)) - np.asarray(keras_resnet(x))).max() < 1e-4


def test_gradient_through_the_identity_shortcut_is_one_plus_the_branch():
    """Y = relu(F(X) + X): where the output is positive, dY/dX = 1 + dF/dX, so the gradient always has a
    direct path. With the residual branch's last batch norm scaled to zero (F = 0), it is exactly 1."""
    block = block_model((4, 4, 16), filters=4, stride=1, projection=False, name="demo")
    bn3 = block.get_layer("demo_3_bn")
    gamma, beta, mean, var = bn3.get_weights()
    bn3.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, var])
    x = tf.constant(np.random.default_rng(0).uniform(0.1, 1.0, (1, 4, 4, 16)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(x)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-6)  # Y = X when F = 0
    np.testing.assert_allclose(np.asarray(grad), 1.0, atol=1e-6)


def test_table1_head_parameter_counts(ours):
    assert ours.get_layer("head_bn").count_params() == 8_192  # Table 1, layer 51
    assert ours.get_layer("head_dense").count_params() == 524_544  # Table 1, layer 53
    assert ours.get_layer("predictions").count_params() == 256 * 4 + 4  # one unit per class (paper: 3 -> 771)
    assert isinstance(ours.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    assert [type(ours.get_layer(n)).__name__ for n in ("head_dropout1", "head_dropout2")] == ["Dropout", "Dropout"]
    assert ours.get_layer("head_dropout1").rate == 0.5
    assert ours.count_params() == 23_587_712 + 8_192 + 524_544 + 1_028  # ResNet-50 without top + head
    table = layer_table(ours)
    assert table.iloc[-1]["parameters"] == ours.count_params()


def test_last_conv_layer_is_reachable_for_gradcam(ours):
    layer = ours.get_layer(LAST_CONV_LAYER)
    grad_model = keras.Model(ours.input, [layer.output, ours.output])
    conv, probs = grad_model(np.zeros((1, 64, 64, 3), "float32"))
    assert conv.shape == (1, 2, 2, 2048) and probs.shape == (1, 4)


def test_weights_file_loads_into_the_backbone(tmp_path, keras_resnet):
    _randomise_bn(keras_resnet, seed=4)
    path = tmp_path / "resnet50_notop.weights.h5"
    keras_resnet.save_weights(path)
    model = build_modified_resnet50(4, 64, weights=path)
    assert "resnet50_notop.weights.h5" in model.weights_source
    for name in ("conv1_conv", "conv3_block2_2_bn", "conv5_block3_3_conv"):
        for a, b in zip(model.get_layer(name).get_weights(), keras_resnet.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_bad_weights_files_are_clear_errors(tmp_path):
    with pytest.raises(LiverlibError, match="does not exist"):
        build_modified_resnet50(4, 64, weights=tmp_path / "missing.h5")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not an h5 file")
    with pytest.raises(LiverlibError, match="could not be loaded as ResNet-50 weights"):
        build_modified_resnet50(4, 64, weights=junk)


def test_imagenet_weights_that_cannot_be_had_say_so_and_start_random(tmp_path, monkeypatch):
    """No cached copy and no server (a closed port): one message, random initialisation (tests/test_weights.py
    covers downloads)."""
    import socket

    from liverlib import weights

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(weights.URL_ENV, f"http://127.0.0.1:{port}/weights.h5")
    monkeypatch.setattr(weights, "_failures", {})
    monkeypatch.setattr(weights, "_reported", set())
    with pytest.warns(UserWarning, match="ImageNet weights unavailable: could not download"):
        model = build_modified_resnet50(4, 64, weights="imagenet")
    assert model.weights_source.startswith("random initialisation (ImageNet weights unavailable: ")


def test_freezing_stages(ours):
    set_trainable_stages(ours, ("head", "conv5"))
    assert not ours.get_layer("conv4_block6_out").trainable and not ours.get_layer("conv1_conv").trainable
    assert ours.get_layer("conv5_block1_1_conv").trainable and ours.get_layer("head_dense").trainable
    trainable = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
    assert 0 < trainable < ours.count_params()
    set_trainable_stages(ours, ("head", "conv1", "conv2", "conv3", "conv4", "conv5"))
    assert all(layer.trainable for layer in ours.layers)


def test_fewer_blocks_per_stage_keep_the_stages_names_and_output_shape(ours):
    from liverlib.model import last_conv_layer

    small = build_modified_resnet50(4, 64, blocks=(1, 1, 1, 1))
    assert small.name == "modified_resnet14" and ours.name == "modified_resnet50"
    assert last_conv_layer(small) == "conv5_block1_out" and last_conv_layer(ours) == LAST_CONV_LAYER
    assert small.get_layer("conv5_block1_out").output.shape == ours.get_layer(LAST_CONV_LAYER).output.shape
    assert len(small.layers) < len(ours.layers) / 2 and small.output.shape == ours.output.shape
    assert list(layer_table(small)["layer"].str.split(" ").str[0][:5]) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    with pytest.raises(LiverlibError, match="no conv5 block output"):
        last_conv_layer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


@pytest.mark.parametrize("kwargs,message", [(dict(num_classes=1), "at least 2 classes"),
                                            (dict(input_size=16), "at least 32 x 32"),
                                            (dict(blocks=(1, 1, 1)), "four whole numbers"),
                                            (dict(blocks="deep"), "four whole numbers"),
                                            (dict(blocks=(1, 0, 1, 1)), "four whole numbers"),
                                            (dict(blocks=(1, 1, 1, 1), weights="imagenet"), "fit ResNet-50")])
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(LiverlibError, match=message):
        build_modified_resnet50(**{"num_classes": 4, "input_size": 64, **kwargs})


def test_gradient_of_a_residual_block_is_shortcut_plus_branch():
    """For Y = relu(F(X) + X): dL/dX = m + J_F^T m, with m = 1 where Y > 0 (L = sum Y). The shortcut adds
    the mask m itself to the gradient, whatever the branch does."""
    block = block_model((4, 4, 16), filters=4, stride=1, projection=False, name="demo")
    _randomise_bn(block, seed=5)
    branch = keras.Model(block.input, block.get_layer("demo_3_bn").output)
    x = tf.constant(np.random.default_rng(1).normal(size=(1, 4, 4, 16)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(x)
        total = tf.reduce_sum(y)
    full = np.asarray(tape.gradient(total, x))
    mask = tf.cast(y > 0, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        masked_branch = tf.reduce_sum(mask * branch(x))
    through_branch = np.asarray(tape.gradient(masked_branch, x))
    np.testing.assert_allclose(full, np.asarray(mask) + through_branch, atol=1e-5)
    assert 0 < np.asarray(mask).mean() < 1  # the check covers both active and inactive outputs

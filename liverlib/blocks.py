"""The paper's equations (1)-(5) as Keras building blocks, one function per equation.

(1) convolution with bias and activation   C = sigma(K * I + b)
(2) batch normalisation                     X_hat = (X - mu) / sigma * gamma + beta
(3) residual block                          Y = F(X) + X
(4) global average pooling                  F_hat = 1/(H W) sum_i sum_j F(i, j)
(5) fully connected layer                   O = sigma(W F_hat + b)

ResNet-50's residual block is the *bottleneck* block of He et al.: F is 1x1 -> 3x3 -> 1x1 convolutions,
each followed by batch normalisation (and ReLU, except the last), and the block adds its input back
before a final ReLU. When the block changes the number of channels or the resolution, the shortcut is a
1x1 "projection" convolution (with batch normalisation) instead of the identity.

Layer names follow ``keras.applications.ResNet50`` (``conv2_block1_1_conv`` ...), so weights copy across
by name; ``tests/test_model.py`` checks that a block built here computes exactly what the Keras block does.
"""

from __future__ import annotations

import keras
from keras import layers

from liverlib.backbone import RESNET50_BLOCKS, checked_blocks

BN_EPSILON = 1.001e-5  # as keras.applications.ResNet50


def conv(x, filters: int, kernel: int, stride: int = 1, name: str = "conv", activation: str | None = None):
    """Equation (1): C = sigma(K * I + b), a 2-D convolution with bias, then the activation (if any)."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same" if kernel > 1 else "valid",
                      use_bias=True, name=name)(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x) if activation else x


def batch_norm(x, name: str):
    """Equation (2): normalise each channel by its batch mean and standard deviation, scale and shift."""
    return layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=name)(x)


def conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool):
    """Convolution (1) followed by batch normalisation (2) and, optionally, ReLU."""
    x = conv(x, filters, kernel, stride, name=f"{name}_conv")
    x = batch_norm(x, name=f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def bottleneck_block(x, filters: int, stride: int = 1, projection: bool = False, name: str = "block"):
    """Equation (3), Y = F(X) + X, for ResNet-50's bottleneck block.

    F(X) = BN(conv1x1(4 filters)) of ReLU(BN(conv3x3)) of ReLU(BN(conv1x1, stride)). With ``projection``
    the shortcut is BN(conv1x1(X, 4 * filters, stride)) so its shape matches F(X).
    """
    shortcut = conv_bn(x, 4 * filters, 1, stride, name=f"{name}_0", relu=False) if projection else x
    f = conv_bn(x, filters, 1, stride, name=f"{name}_1", relu=True)
    f = conv_bn(f, filters, 3, 1, name=f"{name}_2", relu=True)
    f = conv_bn(f, 4 * filters, 1, 1, name=f"{name}_3", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, f])
    return layers.Activation("relu", name=f"{name}_out")(y)


def stage(x, filters: int, blocks: int, stride: int, name: str):
    """A stage of ResNet-50: one projection block (which may downsample), then identity blocks."""
    x = bottleneck_block(x, filters, stride=stride, projection=True, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = bottleneck_block(x, filters, name=f"{name}_block{i}")
    return x


def global_average_pool(x, name: str = "avg_pool"):
    """Equation (4): the mean of each feature map over its H x W positions."""
    return layers.GlobalAveragePooling2D(name=name)(x)


def dense(x, units: int, activation: str, name: str, dtype: str | None = None):
    """Equation (5): O = sigma(W F_hat + b). ``dtype="float32"`` keeps a softmax in float32 under mixed precision."""
    return layers.Dense(units, activation=activation, name=name, dtype=dtype)(x)


def resnet50_backbone(inputs, blocks: tuple[int, ...] = RESNET50_BLOCKS):
    """ResNet-50 without its top, from the blocks above: stem, then stages of 3, 4, 6 and 3 blocks.

    ``blocks``: the blocks per stage. Fewer (the quick profile's (1, 1, 1, 1), a ResNet-14) keep the stem, the
    four stages with their downsampling and channel counts, the layer names and the output shape, with a
    fraction of the layers: the model CI and nbval train to check the pipeline in seconds. Only ResNet-50's
    (3, 4, 6, 3) takes ImageNet weights.
    """
    blocks = checked_blocks(blocks)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = batch_norm(x, "conv1_bn")
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stage(x, 64, blocks[0], stride=1, name="conv2")
    x = stage(x, 128, blocks[1], stride=2, name="conv3")
    x = stage(x, 256, blocks[2], stride=2, name="conv4")
    return stage(x, 512, blocks[3], stride=2, name="conv5")


def block_model(input_shape: tuple[int, int, int], filters: int, stride: int, projection: bool, name: str):
    """One bottleneck block as a Keras model, for checking it against keras.applications.ResNet50."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, bottleneck_block(inputs, filters, stride, projection, name), name=name)

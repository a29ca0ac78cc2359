"""The modified ResNet-50: the backbone built from :mod:`liverlib.blocks` and the paper's Table 1 head.

Table 1's head: GlobalAveragePooling2D -> BatchNormalization -> Dropout(0.5) -> Dense(256, ReLU) ->
Dropout(0.5) -> Dense(softmax). The paper's table gives a 3-unit output (771 parameters) for its four
classes; we use one unit per class (4 units, 1,028 parameters).

The backbone is a flat part of the model (no nested sub-model), so Grad-CAM can reach its last block
(``conv5_block3_out`` in ResNet-50; :func:`last_conv_layer` finds it in any depth) with ``model.get_layer``.
ImageNet weights (the paper's transfer learning) load from a local file, or, with ``weights="imagenet"``, from
Keras' published file, downloaded once into the Keras cache and checked against its published hash (:mod:`liverlib.weights`); when it cannot be had the model
starts from random initialisation and says so once. ``model.weights_source`` says which weights the
backbone starts from, and :func:`liverlib.weights.normalisation_for` which input normalisation they need.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from liverlib.blocks import batch_norm, dense, global_average_pool, resnet50_backbone
from liverlib.backbone import RESNET50_BLOCKS, checked_blocks, resnet_depth, weights_refusal
from liverlib.errors import LiverlibError
from liverlib.weights import IMAGENET_NOTOP_FILE, KERAS_RESNET50_NOTOP_MD5, file_hash, obtain_imagenet_weights, report
from liverlib.weights import normalisation_for  # noqa: F401  (re-exported: the normalisation a model's weights need)

LAST_CONV_LAYER = "conv5_block3_out"  # ResNet-50's; a backbone with other blocks per stage: last_conv_layer(model)


def last_conv_layer(model: keras.Model) -> str:
    """The name of the backbone's last convolutional block (``conv5_block3_out`` in ResNet-50), where Grad-CAM
    reads its feature maps; a clear error when the model has none."""
    names = [layer.name for layer in model.layers
             if layer.name.startswith("conv5_block") and layer.name.endswith("_out")]
    if not names:
        raise LiverlibError(f"the model {model.name!r} has no conv5 block output (conv5_block<N>_out); Grad-CAM needs "
                            "the last convolutional block of a ResNet backbone built by liverlib")
    return names[-1]


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copy the weights of every layer of ``source`` into the layer of the same name in ``target``."""
    copied = 0
    target_layers = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if layer.weights and layer.name in target_layers:
            target_layers[layer.name].set_weights(layer.get_weights())
            copied += 1
    return copied


def _load_backbone_weights(model: keras.Model, weights: str | os.PathLike, input_shape) -> int:
    """Load ResNet-50 weights from a Keras weights file into our backbone; return the layers filled."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise LiverlibError(f"weights file {path} does not exist; give the path to "
                            f"{IMAGENET_NOTOP_FILE} (or a .weights.h5 saved from a ResNet-50 without top)")
    try:
        reference = keras.applications.ResNet50(include_top=False, weights=str(path), input_shape=input_shape)
    except Exception as exc:  # wrong file: h5 of another model, not h5 at all, truncated
        raise LiverlibError(f"{path} could not be loaded as ResNet-50 weights ({type(exc).__name__}: {exc})") from None
    return copy_weights_by_name(reference, model)


def build_modified_resnet50(num_classes: int = 4, input_size: int = 224, dense_units: int = 256,
                            dropout: float = 0.5, weights: str | os.PathLike | None = None,
                            bn_momentum: float = 0.99, blocks: tuple[int, ...] = RESNET50_BLOCKS) -> keras.Model:
    """ResNet-50 (from the paper's equations) with the paper's Table 1 head.

    ``weights``: None for random initialisation; ``"imagenet"`` for Keras' published ImageNet weights, from
    the Keras cache or downloaded and verified (:func:`liverlib.weights.fetch_imagenet_weights`; random
    initialisation, with one message, when they cannot be had); or a path to a weights file.

    ``model.weights_source`` records the outcome: ``"imagenet (keras resnet50 notop, md5 ...)"``,
    ``"random initialisation (ImageNet weights unavailable: <reason>)"``, ``"random initialisation"``, or
    ``"<file name> (<n> layers)"``; ``normalisation_for(model.weights_source)`` names the input
    normalisation the weights need.

    ``bn_momentum``: the momentum of every batch-normalisation layer's moving statistics (Keras' 0.99 by
    default; a short run from random weights wants a lower one, so the statistics used at evaluation keep
    up with the weights).

    ``blocks``: bottleneck blocks per stage, ResNet-50's (3, 4, 6, 3) unless a profile asks for fewer (the quick
    profile's (1, 1, 1, 1), a ResNet-14 for CI); the model is then named after its depth, and takes no
    ImageNet weights.
    """
    if num_classes < 2:
        raise LiverlibError(f"a classifier needs at least 2 classes, got {num_classes}")
    if input_size < 32:
        raise LiverlibError(f"ResNet-50 needs inputs of at least 32 x 32 pixels, got {input_size}")
    blocks = checked_blocks(blocks)
    if blocks != RESNET50_BLOCKS and weights is not None:
        raise LiverlibError(weights_refusal(blocks))
    input_shape = (input_size, input_size, 3)
    inputs = keras.Input(input_shape, name="image")
    features = resnet50_backbone(inputs, blocks)
    x = global_average_pool(features, name="avg_pool")
    x = batch_norm(x, name="head_bn")
    x = layers.Dropout(dropout, name="head_dropout1")(x)
    x = dense(x, dense_units, "relu", name="head_dense")
    x = layers.Dropout(dropout, name="head_dropout2")(x)
    outputs = dense(x, num_classes, "softmax", name="predictions", dtype="float32")  # float32 under mixed precision
    model = keras.Model(inputs, outputs, name=f"modified_resnet{resnet_depth(blocks)}")
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = float(bn_momentum)

    if weights == "imagenet":
        fetched = obtain_imagenet_weights()
        report(fetched)  # one message when falling back to random initialisation
        if fetched.path is not None:
            _load_backbone_weights(model, fetched.path, input_shape)
        model.weights_source = fetched.weights_source
    elif weights is not None:
        filled = _load_backbone_weights(model, weights, input_shape)
        path = Path(weights).expanduser()
        if path.suffix == ".h5" and file_hash(path, "md5") == KERAS_RESNET50_NOTOP_MD5:  # a copy of Keras' file
            model.weights_source = f"imagenet (keras resnet50 notop, md5 {KERAS_RESNET50_NOTOP_MD5}, from {path})"
        else:
            model.weights_source = f"{path.name} ({filled} layers)"
    else:
        model.weights_source = "random initialisation"
    return model


def backbone_stages(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """Layers of the backbone grouped by stage (conv1 ... conv5, in order) and then the head."""
    stages: dict[str, list] = {name: [] for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "head")}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        prefix = layer.name.split("_")[0]
        stages["conv1" if prefix == "pool1" else prefix if prefix in stages else "head"].append(layer)
    return {name: found for name, found in stages.items() if found}


def set_trainable_stages(model: keras.Model, trainable: tuple[str, ...]) -> None:
    """Freeze everything except the named stages ('head', 'conv5', 'conv4', ...).

    Batch-normalisation layers in frozen stages stay in inference mode (Keras does this for layers with
    ``trainable=False``), which is what fine-tuning from ImageNet needs.
    """
    for stage_name, stage_layers in backbone_stages(model).items():
        for layer in stage_layers:
            layer.trainable = stage_name in trainable


def layer_table(model: keras.Model):
    """The model's layers with output shapes and parameter counts, grouped like the paper's Table 1."""
    import pandas as pd

    rows = []
    for stage_name, stage_layers in backbone_stages(model).items():
        if stage_name == "head":
            for layer in stage_layers:
                rows.append({"layer": f"{layer.name} ({type(layer).__name__})",
                             "output shape": str(tuple(layer.output.shape[1:])), "parameters": layer.count_params()})
        else:
            last = stage_layers[-1]
            rows.append({"layer": f"{stage_name} ({len(stage_layers)} layers)",
                         "output shape": str(tuple(last.output.shape[1:])),
                         "parameters": sum(layer.count_params() for layer in stage_layers)})
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {"layer": "total", "output shape": "", "parameters": model.count_params()}
    return table

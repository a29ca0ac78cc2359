"""Grad-CAM: where in the slice the evidence for a class lies (Selvaraju et al., 2017).

For a class c, the feature maps A^k of the last convolutional block (``conv5_block3_out`` in ResNet-50) are weighted
by the spatial mean of the gradient of the class score y^c with respect to them,

    alpha_k = mean_ij  d y^c / d A^k_ij,      L^c = ReLU( sum_k alpha_k A^k ),

and the map L^c (7 x 7 at 224 px input) is upsampled to the slice and scaled to [0, 1]. We use the
softmax probability as y^c, as Keras' own Grad-CAM example does.

On the phantom, where the lesion mask is known, :func:`pointing_game` measures how much of the heatmap's
mass falls inside the lesion: a check that the model looks where a radiologist would
(:func:`liverlib.pointing.phantom_pointing_game` plays it over a run's split).
"""

from __future__ import annotations

import numpy as np

from liverlib.errors import LiverlibError
from liverlib.model import last_conv_layer


class GradCam:
    """Grad-CAM for one model, with its graph traced once for a fixed input shape.

    ``cam(x)`` returns (probabilities, heatmaps) for a batch ``x`` (N x S x S x 3, as the model takes it);
    the heatmap is for the predicted class unless ``class_index`` is given. Heatmaps are at the
    resolution of ``layer`` (S/32) and in [0, 1]; :func:`upsample` brings them to the slice.
    """

    def __init__(self, model, layer: str | None = None):
        import keras  # local: heavy dependency
        import tensorflow as tf

        layer = layer or last_conv_layer(model)  # conv5_block3_out in ResNet-50
        try:
            target = model.get_layer(layer)
        except ValueError:
            raise LiverlibError(f"the model has no layer {layer!r}; Grad-CAM needs the last convolutional block of "
                                f"the backbone ({last_conv_layer(model)} in this model): leave out the layer") from None
        self.layer = layer
        self._grad_model = keras.Model(model.inputs, [target.output, model.outputs[0]])
        size = model.inputs[0].shape[1:]

        @tf.function(input_signature=[tf.TensorSpec((None, *size), tf.float32), tf.TensorSpec((None,), tf.int32)],
                     reduce_retracing=True)
        def _cam(x, class_index):
            with tf.GradientTape() as tape:
                features, probs = self._grad_model(x, training=False)
                chosen = tf.where(class_index < 0, tf.argmax(probs, axis=1, output_type=tf.int32), class_index)
                score = tf.gather(probs, chosen, axis=1, batch_dims=1)
            grads = tape.gradient(score, features)
            alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(alpha * features, axis=-1))
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return probs, tf.math.divide_no_nan(cam, peak)

        self._cam = _cam

    def __call__(self, x: np.ndarray, class_index: int | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        n = len(x)
        index = np.full(n, -1 if class_index is None else 0, dtype=np.int32)
        if class_index is not None:
            index[:] = class_index
        probs, cam = self._cam(x, index)
        return probs.numpy(), cam.numpy()


def grad_cam(model, x: np.ndarray, class_index: int | None = None, layer: str | None = None):
    """Probabilities and Grad-CAM heatmaps (at the layer's resolution, in [0, 1]) for a batch or one image."""
    return GradCam(model, layer)(x, class_index)


def upsample(heatmap: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """A heatmap resized (bilinear) to size x size (or (height, width)), kept in [0, 1]."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32))
    return np.clip(np.asarray(image.resize((width, height), Image.BILINEAR)), 0.0, 1.0)


def overlay(grey: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """The grey slice (0-255) with a colour heatmap blended on top: an H x W x 3 uint8 image."""
    import matplotlib

    grey = np.asarray(grey, dtype=np.float32)
    heat = upsample(heatmap, grey.shape) if heatmap.shape != grey.shape else heatmap
    colour = matplotlib.colormaps[cmap](heat)[..., :3] * 255.0
    base = np.repeat(grey[..., None], 3, axis=-1)
    weight = alpha * heat[..., None]  # no colour where the map is zero
    return np.clip(base * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)


def pointing_game(heatmap: np.ndarray, mask: np.ndarray) -> dict:
    """How well a heatmap points at a region (for example the lesion mask of a phantom slice).

    Returns ``mass_inside`` (fraction of the heatmap's total mass inside the mask), ``hit`` (whether the
    heatmap's peak lies inside the mask: the classic pointing game) and ``area`` (the mask's fraction of
    the slice: the mass a uniform heatmap would put inside, the chance level).
    """
    mask = np.asarray(mask, dtype=bool)
    heat = upsample(heatmap, mask.shape) if heatmap.shape != mask.shape else np.asarray(heatmap, np.float32)
    total = float(heat.sum())
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return {"mass_inside": float(heat[mask].sum() / total) if total > 0 else 0.0,
            "hit": bool(mask[peak]) if total > 0 else False,
            "area": float(mask.mean())}


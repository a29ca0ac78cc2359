"""Preprocessing and augmentation: from image files to the batches ResNet-50 trains on.

The deterministic steps: decode (DICOM: HU, then a window), crop (none, as the paper; or the liver region,
:mod:`liverlib.crop`), resize to the profile's size, replicate the grey channel to 3 channels, normalise as
the weights expect (the paper's /255 for random initialisation; ImageNet's channel means for Keras' ImageNet
weights). They run once per image in a ``tf.data`` pipeline with parallel decoding and are cached (and a
process keeps the prepared slices it has made, :func:`load_resized`, for its next pipeline); shuffling,
batching, augmentation (training only) and prefetching follow. :func:`prepare_grey` is the one function
training, evaluation and classify use to crop and resize, so they all see the same pixels.

Augmentation matches the paper's ImageDataGenerator use (rotation, width and height shift, zoom,
horizontal flip) as one Keras preprocessing layer, :class:`RandomAffine`, that composes the four into a
single affine transform per image: Keras' four separate layers one after another cost about twice as much
(the pipeline benchmark, benchmarks/pipeline.py, times both loaders).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from liverlib.crop import Crop, crop_grey
from liverlib.imaging.decode import decode_file, quantise8

DEFAULT_WINDOW = (40.0, 400.0)  # the abdomen window PNG/JPEG slices are assumed to be stored with

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at module load


def resize_grey(grey: np.ndarray, size: int) -> np.ndarray:
    """A grey image (0-255) resized to size x size with bilinear interpolation, as uint8.

    The grey levels are rounded to 8 bits first (what an 8-bit PNG slice already is; a DICOM slice after
    its window), then resized by PIL in 8-bit mode. Given the 8-bit pixels that decoding keeps
    (:attr:`DecodedImage.grey8`), this skips the floating-point copies of the full slice (decode and resize
    of a 512 x 512 PNG: about 5.5 instead of 8 ms here) and differs from resizing floating-point pixels by
    at most one grey level. Training, evaluation and ``classify`` all call this function, so they see the
    same pixels.
    """
    from PIL import Image

    image = Image.fromarray(quantise8(grey))
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def to_model_input(grey_uint8: np.ndarray) -> np.ndarray:
    """size x size uint8 -> size x size x 3 float32 in [0, 1] (the paper's /255, grey copied to RGB)."""
    x = np.asarray(grey_uint8, dtype=np.float32) / 255.0
    return np.repeat(x[..., None], 3, axis=-1)


def prepare_grey(grey: np.ndarray, size: int, crop: str = "none",
                 window: tuple[float, float] | None = None) -> tuple[np.ndarray, Crop]:
    """A decoded grey slice cropped (``crop``: none, body or liver; see :mod:`liverlib.crop`) and resized to
    size x size uint8, with the crop it used: the one place training, evaluation and classify prepare pixels."""
    cropped, box = crop_grey(grey, crop, window or DEFAULT_WINDOW)
    return resize_grey(cropped, size), box


LOADED_KEPT = 8192  # prepared slices a process keeps: 33 MB at 64 px, 134 MB at 128 px, 411 MB at 224 px


def load_resized(path: str, size: int, window: tuple[float, float] | None = None, crop: str = "none") -> np.ndarray:
    """Decode one file, crop it and resize it: the deterministic part of preprocessing, as uint8 (read-only).

    A process keeps the last :data:`LOADED_KEPT` results, keyed by the file's path, size and modification
    time and by the settings, so a changed file is read again: the training chapter decodes and crops its
    training images once for the ResNet and not again for the small-CNN baseline on the same split, and a
    Hyperband search not again for each configuration."""
    try:
        stat = os.stat(path)
    except OSError:  # not kept: decoding says what is wrong with the path
        return _prepare_file(path, size, window, crop)
    window = None if window is None else (float(window[0]), float(window[1]))
    return _load_resized(os.fspath(path), stat.st_size, stat.st_mtime_ns, int(size), window, crop)


def _prepare_file(path: str, size: int, window, crop: str) -> np.ndarray:
    return prepare_grey(decode_file(path, window).grey8, size, crop, window)[0]


@functools.lru_cache(maxsize=LOADED_KEPT)
def _load_resized(path: str, _bytes: int, _mtime_ns: int, size: int, window, crop: str) -> np.ndarray:
    image = _prepare_file(path, size, window, crop)
    image.flags.writeable = False  # one array shared by every caller
    return image


def forget_loaded() -> None:
    """Empty the process's kept slices (:func:`load_resized`): a benchmark that times decoding calls it first."""
    _load_resized.cache_clear()


def load_images(files, size: int, window: tuple[float, float] | None = None, workers: int = 4,
                crop: str = "none") -> np.ndarray:
    """Many files decoded, cropped and resized in parallel threads: an (N, size, size) uint8 array."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda f: load_resized(str(f), size, window, crop), files))
    return np.stack(images) if images else np.zeros((0, size, size), np.uint8)


def random_affine_layer(rotation_deg: float = 10.0, width_shift: float = 0.1, height_shift: float = 0.1,
                        zoom: float = 0.1, horizontal_flip: bool = True, seed: int | None = None):
    """The paper's augmentation as one Keras layer (see :class:`RandomAffine`)."""
    return _random_affine_class()(rotation_deg, width_shift, height_shift, zoom, horizontal_flip, seed=seed)


def _define_random_affine():
    import keras

    ops = keras.ops

    @keras.saving.register_keras_serializable(package="liverlib")
    class RandomAffine(keras.layers.Layer):
        """Random rotation, shift, zoom and horizontal flip composed into one affine transform per image.

        Ranges follow ImageDataGenerator: ``rotation_deg`` in degrees, shifts and zoom as fractions of the
        image size. Pixels that come from outside the image are filled with 0 (air). Active only when
        ``training=True``; at inference the layer passes images through unchanged.
        """

        def __init__(self, rotation_deg=10.0, width_shift=0.1, height_shift=0.1, zoom=0.1,
                     horizontal_flip=True, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.rotation_deg = float(rotation_deg)
            self.width_shift = float(width_shift)
            self.height_shift = float(height_shift)
            self.zoom = float(zoom)
            self.horizontal_flip = bool(horizontal_flip)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def transform_matrices(self, batch: int, height: int, width: int, seed=None):
            """The (batch, 8) inverse transforms: output pixel -> input pixel.

            ``seed``: None draws from the layer's SeedGenerator (a variable: a stateful op); a (2,) integer
            tensor draws stateless random numbers from it (TensorFlow), as :func:`make_pipeline` does.
            """
            draws = iter(range(5))

            def uniform(low, high):
                if seed is None:
                    return keras.random.uniform((batch,), low, high, seed=self.seed_generator)
                import tensorflow as tf

                draw_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), next(draws))
                return tf.random.stateless_uniform((batch,), draw_seed, minval=low, maxval=high)

            angle = uniform(-1.0, 1.0) * (self.rotation_deg * np.pi / 180.0)
            scale = uniform(1.0 - self.zoom, 1.0 + self.zoom)
            tx = uniform(-1.0, 1.0) * self.width_shift * width
            ty = uniform(-1.0, 1.0) * self.height_shift * height
            if self.horizontal_flip:
                flip = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)
            else:
                flip = ops.ones((batch,))
            cos, sin = ops.cos(angle), ops.sin(angle)
            # input = C + F R(-angle) (output - C - t) / scale, with F = diag(flip, 1)
            m00, m01 = flip * cos / scale, flip * sin / scale
            m10, m11 = -sin / scale, cos / scale
            cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
            ox, oy = cx + tx, cy + ty
            a2 = cx - (m00 * ox + m01 * oy)
            b2 = cy - (m10 * ox + m11 * oy)
            zeros = ops.zeros((batch,))
            return ops.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)

        def call(self, images, training=None, seed=None):
            if not training:
                return images
            shape = ops.shape(images)
            matrices = self.transform_matrices(shape[0], images.shape[1], images.shape[2], seed)
            return ops.image.affine_transform(ops.cast(images, "float32"), matrices, interpolation="bilinear",
                                              fill_mode="constant", fill_value=0.0)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "rotation_deg": self.rotation_deg, "width_shift": self.width_shift,
                    "height_shift": self.height_shift, "zoom": self.zoom,
                    "horizontal_flip": self.horizontal_flip, "seed": self.seed}

    return RandomAffine


@functools.cache
def _random_affine_class():
    return _define_random_affine()


def __getattr__(name):  # RandomAffine is defined on first use, so importing this module does not import Keras
    if name == "RandomAffine":
        return _random_affine_class()
    raise AttributeError(name)


def make_pipeline(files, labels, size: int, batch_size: int, training: bool, augmentation=None,
                  window: tuple[float, float] | None = None, seed: int = 42, cache: bool = True,
                  crop: str = "none", normalisation: str = "unit"):
    """A ``tf.data.Dataset`` of (images, labels) batches: images float32 (B, size, size, 3), normalised as the
    model's weights expect (``normalisation``: "unit" is /255 into [0, 1]; see :func:`normalise`).

    Parallel decode, crop and resize -> cache -> (training: shuffle) -> batch -> (training: RandomAffine) ->
    grey to RGB and normalise -> prefetch.
    """
    import tensorflow as tf

    files = [str(f) for f in files]
    labels = np.asarray(labels, dtype=np.int32)

    def decode(path):
        return load_resized(path.decode() if isinstance(path, bytes) else str(path), size, window, crop)

    def tf_decode(path, label):
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((size, size))
        return image[..., None], label

    ds = tf.data.Dataset.from_tensor_slices((files, labels))
    ds = ds.map(tf_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augmentation is not None:
        augment = random_affine_layer(augmentation.rotation_deg, augmentation.width_shift,
                                      augmentation.height_shift, augmentation.zoom, augmentation.horizontal_flip,
                                      seed=seed)
        # one stateless seed per batch, new every epoch: the map then holds no stateful op, so under op
        # determinism (training's make_deterministic) tf.data keeps it, and the whole pipeline, parallel and
        # prefetched instead of rewriting it to run sequentially (which also logged "NodeDef mentions
        # attribute use_unbounded_threadpool ..." once per fit, a TensorFlow bug in that rewrite)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, pair: (augment(tf.cast(batch[0], tf.float32), training=True, seed=pair), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE)

    def finish(x, y):
        return normalise_tf(tf.repeat(x, 3, axis=-1), normalisation), y

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# Input normalisation: what the network's weights expect of its 3-channel input. Model weights and their
# normalisation go together: liverlib.weights.normalisation_for(model.weights_source) names the mode.
#   "unit"            x / 255, into [0, 1]: the course's (and the paper's) preprocessing, for random
#                     initialisation and for models trained with it.
#   "imagenet-caffe"  keras.applications.resnet50.preprocess_input ("caffe" mode): 0-255 RGB -> BGR, then
#                     minus the ImageNet channel means (B 103.939, G 116.779, R 123.68), no scaling: what
#                     Keras' ImageNet ResNet-50 weights were trained on. On a grey slice copied to 3
#                     channels the channel swap changes nothing; the means still differ per channel.
NORMALISATION_MODES = ("unit", "imagenet-caffe")
IMAGENET_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _check_normalisation(mode: str, channels) -> None:
    from liverlib.errors import LiverlibError

    if mode not in NORMALISATION_MODES:
        raise LiverlibError(f"unknown input normalisation {mode!r}; use one of {', '.join(NORMALISATION_MODES)}")
    if mode == "imagenet-caffe" and channels is not None and channels != 3:  # None: not known in a graph
        raise LiverlibError(f"'imagenet-caffe' normalisation needs 3 channels (last axis), got {channels}")


def normalise(x, mode: str = "unit") -> np.ndarray:
    """0-255 images (uint8 or float; channels last, 3 channels for "imagenet-caffe") -> float32 network input.

    ``mode``: one of :data:`NORMALISATION_MODES` (see the comment above them). Equal to
    ``keras.applications.resnet50.preprocess_input`` for "imagenet-caffe" and to :func:`to_model_input`'s
    /255 for "unit"; :func:`normalise_tf` computes the same inside a ``tf.data`` pipeline.
    """
    x = np.asarray(x, dtype=np.float32)
    _check_normalisation(mode, x.shape[-1] if x.ndim else 0)
    if mode == "unit":
        return x / 255.0
    return x[..., ::-1] - np.asarray(IMAGENET_CAFFE_MEAN_BGR, dtype=np.float32)


def normalise_tf(x, mode: str = "unit"):
    """:func:`normalise` as TensorFlow operations (for ``tf.data`` maps and graphs); returns float32."""
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    _check_normalisation(mode, None if rank is None else x.shape[-1] if rank else 0)
    if mode == "unit":
        return x / 255.0
    return tf.reverse(x, axis=[-1]) - tf.constant(IMAGENET_CAFFE_MEAN_BGR, dtype=tf.float32)

"""The training pipeline (decode -> cache -> shuffle -> batch -> augment -> RGB/255): every image keeps its label.

A pipeline that shuffled images and labels apart would still train, and only learn nothing; these tests
give each class its own grey level so that the label of every image can be read back from its pixels.
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from liverlib.config import AugmentationConfig
from liverlib.preprocess import make_pipeline, random_affine_layer, resize_grey

GREY = (30, 90, 150, 210)  # one uniform grey level per class


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("grey")
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(4), 10))
    paths = []
    for i, label in enumerate(labels):
        path = root / f"{i:03d}.png"
        Image.fromarray(np.full((48, 40), GREY[label], np.uint8)).save(path)  # not square, not the model's size
        paths.append(path)
    return paths, labels


def _label_from_pixels(images: np.ndarray) -> np.ndarray:
    """Class of each image from its centre pixel (a uniform image stays uniform there under the augmentation)."""
    centre = images[:, images.shape[1] // 2, images.shape[2] // 2, 0] * 255
    return np.abs(centre[:, None] - np.array(GREY)[None]).argmin(axis=1)


def test_training_batches_keep_each_image_with_its_label(files):
    paths, labels = files
    ds = make_pipeline(paths, labels, 32, 6, training=True, augmentation=AugmentationConfig(), seed=3)
    orders = []
    for _ in range(2):  # the second epoch reads the cache
        seen = []
        for x, y in ds:
            x, y = x.numpy(), y.numpy()
            assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32
            assert 0.0 <= x.min() and x.max() <= 1.0
            assert np.array_equal(x[..., 0], x[..., 2])  # grey repeated into three channels
            np.testing.assert_array_equal(_label_from_pixels(x), y)
            seen.extend(y.tolist())
        assert sorted(seen) == sorted(labels.tolist())  # every image once per epoch
        orders.append(seen)
    assert orders[0] != orders[1]  # reshuffled each epoch


def test_validation_batches_keep_the_file_order_and_are_not_augmented(files):
    paths, labels = files
    ds = make_pipeline(paths, labels, 32, 8, training=False, augmentation=AugmentationConfig())
    x = np.concatenate([b.numpy() for b, _ in ds])
    y = np.concatenate([lab.numpy() for _, lab in ds])
    np.testing.assert_array_equal(y, labels)
    expected = np.array(GREY)[labels][:, None, None, None] / 255
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), atol=1e-6)  # uniform: nothing moved


def test_random_affine_moves_images_only_when_training_and_within_its_ranges():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, 32, 32, 1)).astype(np.float32)
    layer = random_affine_layer(10, 0.1, 0.1, 0.1, True, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    moved = np.asarray(layer(images, training=True))
    assert moved.shape == images.shape and not np.allclose(moved, images)
    still = random_affine_layer(0, 0, 0, 0, False, seed=0)
    np.testing.assert_allclose(np.asarray(still(images, training=True)), images, atol=1e-3)  # identity transform


def test_resize_rounds_to_8_bits_first_and_stays_within_one_grey_level_of_a_float_resize():
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.uniform(0, 255, (16, 16)), np.ones((32, 32)))  # 512 x 512, fractional levels
    levels = np.clip(np.round(smooth), 0, 255)
    # float grey levels and their 8-bit form give the same pixels: classify and training agree
    assert np.array_equal(resize_grey(smooth.astype(np.float32), 224), resize_grey(levels.astype(np.uint8), 224))
    assert resize_grey(levels.astype(np.uint8), 224).dtype == np.uint8
    floating = np.asarray(Image.fromarray(smooth.astype(np.float32)).resize((224, 224), Image.BILINEAR))
    assert np.abs(resize_grey(smooth, 224).astype(float) - floating).max() <= 1.5
    assert np.array_equal(resize_grey(levels.astype(np.uint8), 512), levels)  # already the size: unchanged


DETERMINISM_SCRIPT = """
import numpy as np, tensorflow as tf, keras
from PIL import Image
import liverlib
from liverlib.config import AugmentationConfig
from liverlib.preprocess import make_pipeline
files = []
for i in range(8):
    path = f"{i}.png"
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40), dtype=np.uint8)).save(path)
    files.append(path)
tf.config.experimental.enable_op_determinism()  # as training does


def two_epochs():
    keras.utils.set_random_seed(0)
    ds = make_pipeline(files, [i % 2 for i in range(8)], 32, 4, training=True, augmentation=AugmentationConfig())
    return [np.concatenate([x for x, _ in ds.as_numpy_iterator()]) for _ in range(2)]


first, again = two_epochs(), two_epochs()  # a new pipeline under the same seed
assert not np.array_equal(first[0], first[1]), "the same augmentation every epoch"
assert all(np.array_equal(a, b) for a, b in zip(first, again)), "the same seed gave other augmented batches"
print("ok")
"""


def test_augmented_pipeline_is_not_rewritten_under_op_determinism(tmp_path):
    """Training enables op determinism; a tf.data map holding a stateful op (a SeedGenerator) is then rewritten
    to run sequentially, with prefetching off, and TensorFlow 2.20/2.21's rewrite logs "NodeDef mentions
    attribute use_unbounded_threadpool ...". Stateless augmentation seeds avoid the rewrite; same seed, same
    augmented batches (two pipelines built under one seed in one process)."""
    run = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "use_unbounded_threadpool" not in run.stderr
    assert run.stdout.strip() == "ok"


def test_a_process_keeps_prepared_slices_until_the_file_changes(tmp_path):
    """load_resized keeps what it prepared (the training chapter's baseline reuses the ResNet's decoded
    training images), keyed by the file's size and modification time and by the settings."""
    import os

    from liverlib.preprocess import forget_loaded, load_images, load_resized

    forget_loaded()
    path = tmp_path / "slice.png"
    Image.fromarray(np.full((40, 40), 60, np.uint8)).save(path)
    first = load_resized(str(path), 16)
    assert load_resized(str(path), 16) is first  # kept
    assert not first.flags.writeable  # shared, so nobody may change it in place
    assert load_resized(str(path), 8).shape == (8, 8)  # another size is prepared on its own
    stacked = load_images([path, path], 16)
    assert stacked.flags.writeable and stacked.shape == (2, 16, 16)  # a caller's own copy

    Image.fromarray(np.full((40, 40), 200, np.uint8)).save(path)  # the file changes: read again
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    changed = load_resized(str(path), 16)
    assert changed is not first and int(changed.mean()) == 200 and int(first.mean()) == 60

    forget_loaded()
    assert load_resized(str(path), 16) is not changed


def test_a_missing_file_still_gets_the_decoders_error(tmp_path):
    from liverlib.errors import LiverlibError
    from liverlib.preprocess import load_resized

    with pytest.raises((LiverlibError, OSError)) as raised:
        load_resized(str(tmp_path / "gone.png"), 16)
    assert "gone.png" in str(raised.value)

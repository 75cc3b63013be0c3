"""The data a training run reads: the data set, its seeded training and validation subsets, and
the ``tf.data`` pipelines that batch, scale and (optionally) augment them.

Images stay uint8 until a pipeline gathers a batch; scaling, the optional augmentation and
prefetching happen there, so no float copy of the data set is ever made.
"""

from __future__ import annotations

import math

from handwritten import emnist
from handwritten.errors import DataError
from handwritten.settings import DRY_RUN_SAMPLES, Settings


def load_training_data(settings: Settings, base_meta: dict | None):
    """The data set; for a fine-tune, in the model's split and with the model's number of classes."""
    split = settings.split
    if split is None and base_meta and base_meta.get("split") in emnist.SPLITS:
        # A fine-tune reads the split the model was trained on when the folder has it.
        folder = emnist.find_data(settings.data)
        split = base_meta["split"] if base_meta["split"] in emnist._emnist_splits_in(folder) else None
    dataset = emnist.load(settings.data, split)
    if base_meta and dataset.classes != len(base_meta["mapping"]):
        raise DataError(
            f"{dataset.folder}: has {dataset.classes} classes (split {dataset.split.name}) but the model "
            f"{settings.base_model} was trained for {len(base_meta['mapping'])} (split {base_meta.get('split')}); "
            "fine-tune it on data with the same classes")
    if len(dataset.y_test) == 0:
        raise DataError(f"{dataset.folder}: the test part holds no images; a trained model could not be tested")
    return dataset


def split_indices(dataset, settings: Settings, dry_run: bool):
    """Seeded index arrays for the training subset and the validation hold-out."""
    import numpy as np

    rng = np.random.default_rng(settings.seed)
    n = len(dataset.y_train)
    chosen = rng.permutation(n)[: max(1, round(n * settings.part))]
    if dry_run:
        chosen = chosen[:DRY_RUN_SAMPLES]
    held = int(len(chosen) * settings.validation)
    train_idx, val_idx = np.sort(chosen[held:]), np.sort(chosen[:held])
    if len(train_idx) == 0:
        raise DataError(f"{dataset.folder}: no training images left after part={settings.part} "
                        f"and validation={settings.validation}")
    return train_idx, val_idx


def training_framing(images) -> dict:
    """How the training images are framed, so that prediction can frame a user's image alike."""
    from handwritten.framing import measure_framing

    try:
        return measure_framing(images)
    except ValueError:  # nothing to measure (blank images): assume EMNIST's framing
        return {"kind": "bbox", "pad": 2}


# The share of each batch that is warped; the rest is seen as it is. Warping every image held
# model_1 back on a short run (on Fashion-MNIST, nine epochs with every image warped tested lower
# than nine with none), while warping half keeps most of the variety each epoch shows.
WARPED_SHARE = 0.5


def random_affine(images, seed, share: float = WARPED_SHARE):
    """Random affine for a ``share`` of the images: rotation +-8 deg, shift +-2 px, scale 0.95-1.05, shear +-0.1.

    EMNIST's images are centred and scaled to their bounding box, so shift and scale vary little;
    rotation and shear stand for the slant of handwriting. The other images get the identity
    (bilinear sampling at whole pixels: the same pixels). ``seed`` (an int64 scalar tensor)
    makes the draw a function of it alone, whatever thread of a parallel map runs it.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    parts = iter(tf.unstack(tf.random.stateless_uniform([6, n], tf.stack([seed, seed // 7]))))
    warp = tf.cast(next(parts) < share, tf.float32)
    uniform = lambda lo, hi: warp * (lo + (hi - lo) * next(parts))  # noqa: E731 (0 where not warped)
    angle, shear = uniform(-0.14, 0.14), uniform(-0.1, 0.1)
    scale, tx, ty = 1.0 + uniform(-0.05, 0.05), uniform(-2.0, 2.0), uniform(-2.0, 2.0)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # The transform maps each output pixel to where it is read in the input, about the centre.
    a0, a1, b0, b1 = cos, -sin + shear * cos, sin, cos + shear * sin
    c = (size - 1.0) / 2.0
    a2, b2 = c - a0 * c - a1 * c + tx, c - b0 * c - b1 * c + ty
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def make_pipeline(x, y, indices, *, batch: int, input_shape, transposed: bool, train: bool, augment: bool,
                  seed: int):
    """A ``tf.data`` pipeline that gathers uint8 batches by index and scales them to [0, 1]."""
    import tensorflow as tf

    def prepare(idx, draw=None):
        images = tf.gather(x, idx)
        if transposed:  # a model trained on EMNIST's files as stored
            images = tf.transpose(images, [0, 2, 1])
        images = tf.cast(images, tf.float32)[..., None] / 255.0
        if augment:
            images = random_affine(images, draw)
        return tf.reshape(images, [-1, *input_shape]), tf.gather(y, idx)

    if train:
        # One permutation of the indices per epoch, drawn whole: tf.data's shuffle() passes every
        # element through its buffer one by one, which halved model_2's throughput on two cores.
        order = tf.constant(indices)
        ds = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
              .map(lambda s: tf.random.experimental.stateless_shuffle(order, seed=tf.stack([s, s // 3])))
              .flat_map(tf.data.Dataset.from_tensor_slices))
    else:
        ds = tf.data.Dataset.from_tensor_slices(indices)
    ds = ds.batch(batch).apply(tf.data.experimental.assert_cardinality(math.ceil(len(indices) / batch)))
    if augment:
        # Each batch's warp comes from its own seed, drawn in order: the same run twice warps alike.
        draws = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, draws))
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Deleting an epoch's iterator waits for tf.data's autotuning thread: on two cores that held the
    # next epoch back, idle, for 13-19 s in about a third of model_1's epochs. Without the autotuner,
    # AUTOTUNE means one call per core for the map and a prefetch buffer that grows on its own.
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

"""Data readers and loaders, each format read from tiny files the test writes in that format."""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.train.data import (
    DATA_STATS,
    DataSpec,
    SmallImageTransform,
    build_loaders,
    parse_data_spec,
)
from cnnlab.train.datasets import (
    load_cifar_pickles,
    load_class_folder,
    load_class_tar,
    load_digits_split,
    load_idx_split,
    safe_load_pickle,
)

RNG = np.random.default_rng(0)


def write_idx(root, train, images, labels, magic=(2051, 2049)):
    prefix = "train" if train else "t10k"
    n, rows, cols = images.shape
    with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">4I", magic[0], n, rows, cols) + images.tobytes())
    with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">2I", magic[1], len(labels)) + labels.tobytes())


def make_idx_root(root, n_train=12, n_test=5):
    data = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n, dtype=np.uint8)
        write_idx(root, train, images, labels)
        data[train] = images, labels
    return data


def write_cifar10_batches(root, per_batch=4):
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, per_batch)]
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, f, protocol=2)
        written[name] = data, labels
    return written


def write_image_tree(root, split, classes, per_class=2, size=8, suffix=".png"):
    for label, name in enumerate(classes):
        (root / split / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size, 3), 20 * label + i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name / f"{i:04d}{suffix}")


def test_digits_split_sizes_shapes_and_classes():
    train, val = load_digits_split(True), load_digits_split(False)
    assert (len(train), len(val)) == (1437, 360)  # stratified 80/20 of 1,797
    image, label = train[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8)
    assert set(val.labels.tolist()) == set(range(10)) and 0 <= label < 10
    assert int(train.images.max()) == 255  # 16 -> 255


def test_idx_round_trip(tmp_path):
    data = make_idx_root(tmp_path)
    for train in (True, False):
        dataset = load_idx_split(tmp_path, train)
        images, labels = data[train]
        assert torch.equal(dataset.images[:, 0], torch.from_numpy(images))
        assert dataset.labels.tolist() == labels.tolist()


def test_idx_truncated_and_bad_magic_name_the_file(tmp_path):
    make_idx_root(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*expected 9408"):
        load_idx_split(tmp_path, True)
    path.write_bytes(gzip.compress(struct.pack(">I", 2049) + raw[4:]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: bad IDX magic 2049"):
        load_idx_split(tmp_path, True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"missing IDX file .*t10k-labels-idx1-ubyte\.gz"):
        load_idx_split(tmp_path, False)


def test_cifar_pickle_batches_load(tmp_path):
    written = write_cifar10_batches(tmp_path)
    train = load_cifar_pickles(tmp_path, 10, True)
    assert len(train) == 20 and train.images.shape == (20, 3, 32, 32)
    data, labels = written["data_batch_2"]
    assert torch.equal(train.images[4:8].reshape(4, -1), torch.from_numpy(data))
    assert train.labels[4:8].tolist() == labels
    test = load_cifar_pickles(tmp_path, 10, False)
    assert test.labels.tolist() == written["test_batch"][1]


def test_cifar100_fine_labels(tmp_path):
    for name in ("train", "test"):
        batch = {
            b"data": np.zeros((3, 3072), np.uint8),
            b"fine_labels": [99, 0, 42],
            b"coarse_labels": [1, 2, 3],
        }
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    assert load_cifar_pickles(tmp_path, 100, True).labels.tolist() == [99, 0, 42]


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_forbidden_global_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"data_batch_1: not a safe CIFAR pickle.*refused global"):
        safe_load_pickle(path)


def test_class_folder_and_tar_layouts(tmp_path):
    classes = ["cat", "airplane", "dog"]
    write_image_tree(tmp_path, "train", classes)
    folder = load_class_folder(tmp_path / "train")
    assert folder.classes == ["airplane", "cat", "dog"] and folder.labels == [0, 0, 1, 1, 2, 2]
    image, label = folder[3]
    assert image.size == (8, 8) and label == 1 and image.getpixel((0, 0)) == (1, 1, 1)
    with tarfile.open(tmp_path / "train.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "train", arcname="train")
    archived = load_class_tar(tmp_path / "train.tar.gz")
    assert archived.classes == folder.classes and archived.labels == folder.labels
    assert np.array_equal(np.asarray(archived[3][0]), np.asarray(image))


def test_cifar_jpeg_tar_layout_loads_normalised(tmp_path):
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    for split in ("train", "test"):
        write_image_tree(tmp_path / "unpacked", split, names, per_class=1, size=32, suffix=".jpg")
        with tarfile.open(tmp_path / f"{split}.tar.gz", "w:gz") as tar:
            tar.add(tmp_path / "unpacked" / split, arcname=split)
    train, val, num_classes, in_chans = build_loaders(f"cifar10:{tmp_path}", batch_size=4)
    assert (num_classes, in_chans, len(train.dataset), len(val.dataset)) == (10, 3, 10, 10)
    assert val.dataset.images.shape == (10, 3, 32, 32)  # decoded once, not per epoch
    x, y = next(iter(val))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]
    mean, std = DATA_STATS["cifar10"]
    expected = (torch.tensor(20 * 2 / 255) - mean[0]) / std[0]  # JPEG of a flat grey is exact
    assert x[2, 0].allclose(expected, atol=1e-2)
    x, _ = next(iter(train))
    assert x.shape == (4, 3, 32, 32)


def test_folder_spec_train_val(tmp_path):
    write_image_tree(tmp_path, "train", ["a", "b"], size=20)
    write_image_tree(tmp_path, "val", ["a", "b"], size=20)
    train, val, num_classes, in_chans = build_loaders(
        f"folder:{tmp_path}", batch_size=2, image_size=16
    )
    assert (num_classes, in_chans) == (2, 3)
    assert next(iter(train))[0].shape == next(iter(val))[0].shape == (2, 3, 16, 16)


def test_idx_loaders_keep_28_pixels_and_normalise(tmp_path):
    make_idx_root(tmp_path)
    train, val, num_classes, in_chans = build_loaders(
        f"mnist:{tmp_path}", batch_size=5, augment=False
    )
    x, _ = next(iter(val))
    raw = val.dataset.images[:5].float() / 255
    assert x.shape == (5, 1, 28, 28) and (num_classes, in_chans) == (10, 1)
    assert torch.allclose(x, (raw - 0.1307) / 0.3081, atol=1e-6)


def test_digits_loaders_shapes():
    train, val, num_classes, in_chans = build_loaders("digits", batch_size=32)
    x, y = next(iter(train))
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (num_classes, in_chans, len(val.dataset)) == (10, 1, 360)


def test_distributed_sampler_splits_one_epoch_disjointly():
    shards = []
    for rank in (0, 1):
        train, *_ = build_loaders("digits", batch_size=8, seed=3, world_size=2, rank=rank)
        train.sampler.set_epoch(1)
        shards.append([i for _, i in train.sampler])
    assert len(shards[0]) == len(shards[1]) == 718 and not set(shards[0]) & set(shards[1])
    alone, *_ = build_loaders("digits", batch_size=8, seed=3)
    alone.sampler.set_epoch(1)
    order = [i for _, i in alone.sampler]
    assert sorted(order) == list(range(1437))
    assert shards[0] == order[:1436][0::2] and shards[1] == order[:1436][1::2]  # one shuffle
    alone.sampler.set_epoch(2)
    assert [i for _, i in alone.sampler] != order


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imagenet:/x", "unknown data spec 'imagenet:/x': expected digits | mnist:PATH"),
        ("mnist", "mnist needs a path"),
        ("digits:/x", "digits takes no path"),
        ("cifar10:/no/such/dir", "data path /no/such/dir does not exist"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_data_spec(spec)


def test_spec_parses_and_missing_files_name_them(tmp_path):
    assert parse_data_spec(f"fashion-mnist:{tmp_path}") == DataSpec("fashion-mnist", tmp_path)
    with pytest.raises(ValueError, match=r"missing IDX file .*train-images-idx3-ubyte\.gz"):
        build_loaders(f"fashion-mnist:{tmp_path}", batch_size=2)
    with pytest.raises(ValueError, match=r"no train/ \(or train\.tar\.gz\) found"):
        build_loaders(f"folder:{tmp_path}", batch_size=2)


def test_unsafe_bytes_never_execute(tmp_path, capfd):
    payload = io.BytesIO()
    pickle.dump(Exploit(), payload)
    (tmp_path / "test_batch").write_bytes(payload.getvalue())
    with pytest.raises(ValueError, match="refused global posix.system|refused global nt.system"):
        load_cifar_pickles(tmp_path, 10, False)
    assert "pwned" not in capfd.readouterr().out


def test_small_image_augment_is_a_shift_or_flip_of_the_padded_image():
    image = torch.randint(1, 256, (3, 6, 6), dtype=torch.uint8)
    augment = SmallImageTransform((0.0,) * 3, (1 / 255,) * 3, pad=2, flip=True)  # x -> pixel
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2)).float()
    windows = [padded[:, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
    windows += [w.flip(-1) for w in windows]
    seen = set()
    for _ in range(60):
        out = augment(image)
        (k,) = [k for k, w in enumerate(windows) if torch.allclose(out, w, atol=1e-3)]
        seen.add(k)
    assert len(seen) > 20  # both shifts and flips occur


def test_cifar_folder_of_wrong_size_images_is_refused(tmp_path):
    names = [f"c{i}" for i in range(10)]
    write_image_tree(tmp_path, "train", names, per_class=1, size=8)
    write_image_tree(tmp_path, "test", names, per_class=1, size=8)
    with pytest.raises(ValueError, match=r"c0/0000\.png: image 8x8, expected 32x32"):
        build_loaders(f"cifar10:{tmp_path}", batch_size=2)

"""Readers for the training data formats: sklearn digits, IDX (MNIST), CIFAR pickles, class folders.

Every reader returns a `torch.utils.data.Dataset` of `(image, label)` with the image a uint8
tensor C x H x W (array formats) or a PIL image (folders, tar archives), and the label an int.
A missing or malformed file raises ValueError naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnlab.errors import BadValue

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
IDX_IMAGES_MAGIC = 2051  # LeCun's IDX format: 0x00000803 = uint8, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801 = uint8, 1 dimension


class ArrayDataset(Dataset):
    """In-memory images N x C x H x W (uint8) and integer labels, with an optional transform."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None
    ):
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise BadValue(
                f"expected uint8 N x C x H x W images and N labels, got "
                f"{images.dtype} {tuple(images.shape)} and {len(labels)} labels"
            )
        self.images, self.labels, self.transform = images, labels.long(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]
        return (self.transform(image) if self.transform else image), int(self.labels[i])


class ImageListDataset(Dataset):
    """Images given as file paths or encoded bytes, decoded to RGB/L PIL on access (class folders)."""

    def __init__(
        self,
        items: list,
        labels: list[int],
        classes: list[str],
        mode: str = "RGB",
        transform: Callable | None = None,
    ):
        self.items, self.labels, self.classes = items, labels, classes
        self.mode, self.transform = mode, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        item = self.items[i]
        source = io.BytesIO(item) if isinstance(item, bytes) else item
        with Image.open(source) as im:
            image = im.convert(self.mode)
        return (self.transform(image) if self.transform else image), self.labels[i]


# --- scikit-learn digits ------------------------------------------------------------------------

DIGITS_VAL_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def load_digits_split(train: bool) -> ArrayDataset:
    """sklearn's 1,797 8x8 digits (values 0..16 scaled to 0..255); a stratified 80/20 split, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # N,1,8,8
    index = np.arange(len(pixels))
    train_idx, val_idx = train_test_split(
        index, test_size=DIGITS_VAL_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=digits.target
    )
    chosen = np.sort(train_idx if train else val_idx)
    return ArrayDataset(torch.from_numpy(pixels[chosen]), torch.from_numpy(digits.target[chosen]))


# --- IDX (MNIST, Fashion-MNIST) -----------------------------------------------------------------

IDX_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One gzip'd IDX file (big-endian uint32 header: magic, n[, rows, cols]; then uint8 data)."""
    ndim = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}[magic]
    if not path.is_file():
        raise BadValue(f"missing IDX file {path}: expected a gzip'd IDX file (magic {magic})")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise BadValue(f"{path}: not a readable gzip file ({exc})") from None
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise BadValue(f"{path}: truncated IDX header: {len(raw)} bytes, expected {header}")
    found, *dims = struct.unpack(f">{1 + ndim}I", raw[:header])
    if found != magic:
        raise BadValue(f"{path}: bad IDX magic {found}, expected {magic}")
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise BadValue(
            f"{path}: IDX data has {len(raw) - header} bytes, expected "
            f"{expected} for shape {tuple(dims)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_split(root: Path, train: bool) -> ArrayDataset:
    """MNIST-layout IDX pair from `root` (train-* or t10k-* files) as 1 x rows x cols images."""
    image_name, label_name = IDX_FILES[train]
    images = read_idx(root / image_name, IDX_IMAGES_MAGIC)
    labels = read_idx(root / label_name, IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise BadValue(
            f"{root / label_name}: {len(labels)} labels, expected {len(images)} "
            f"(one per image in {image_name})"
        )
    return ArrayDataset(torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.copy()))


# --- CIFAR python pickles -----------------------------------------------------------------------

SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for `_codecs.encode`, which protocol-2 pickles use for bytes; latin-1 only."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refused codec {encoding!r} in _codecs.encode")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/dtype reconstruction; any other global is refused.

    Containers (dict, list, tuple, bytes, str, numbers) need no global lookup, so the only code a
    pickle can reach is the allow-list above (plus a latin-1-only `_codecs.encode` for the bytes of
    protocol-2 pickles), none of which calls an arbitrary callable.
    """

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name} (only numpy arrays allowed)"
            )
        return super().find_class(module, name)


def safe_load_pickle(path: Path) -> dict:
    """Load one CIFAR batch dict with `SafeUnpickler` (bytes keys, as the Python 2 pickles have)."""
    if not path.is_file():
        raise BadValue(f"missing CIFAR batch {path}: expected a python pickle batch file")
    try:
        with open(path, "rb") as f:
            batch = SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise BadValue(f"{path}: not a safe CIFAR pickle batch ({exc})") from None
    if not isinstance(batch, dict):
        raise BadValue(f"{path}: expected a dict batch, got {type(batch).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


CIFAR_BATCHES = {
    10: {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]},
    100: {True: ["train"], False: ["test"]},
}
CIFAR_SUBDIR = {10: "cifar-10-batches-py", 100: "cifar-100-python"}


def cifar_pickle_root(root: Path, num_classes: int) -> Path | None:
    """The folder holding the pickle batches (`root` or its standard subfolder), else None."""
    first = CIFAR_BATCHES[num_classes][False][0]
    for candidate in (root, root / CIFAR_SUBDIR[num_classes]):
        if (candidate / first).is_file():
            return candidate
    return None


def load_cifar_pickles(root: Path, num_classes: int, train: bool) -> ArrayDataset:
    """CIFAR-10/100 python batches: `data` N x 3072 uint8 (R, G, B planes), `labels`/`fine_labels`."""
    label_key = "labels" if num_classes == 10 else "fine_labels"
    images, labels = [], []
    for name in CIFAR_BATCHES[num_classes][train]:
        path = root / name
        batch = safe_load_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise BadValue(f"{path}: expected keys b'data' and b'{label_key}', got {list(batch)}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch[label_key]):
            raise BadValue(f"{path}: expected data N x 3072 with N labels, got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return ArrayDataset(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
    )


# --- class folders, unpacked or as tar archives -------------------------------------------------


def load_class_folder(split_dir: Path, mode: str = "RGB") -> ImageListDataset:
    """`split_dir/<class>/<image>`: classes in sorted order (CIFAR-10's names sort into its labels)."""
    if not split_dir.is_dir():
        raise BadValue(f"missing folder {split_dir}: expected class subfolders of images")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    items, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        items += files
        labels += [label] * len(files)
    if not items:
        raise BadValue(f"{split_dir}: no images found, expected <class>/<image>{IMAGE_SUFFIXES}")
    return ImageListDataset(items, labels, classes, mode)


def load_class_tar(path: Path, mode: str = "RGB") -> ImageListDataset:
    """A tar (optionally gzip'd) of `<split>/<class>/<image>` members, read into memory once."""
    if not path.is_file():
        raise BadValue(f"missing archive {path}: expected a tar of <split>/<class>/<image>")
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if len(parts) < 2:
                    continue
                by_class.setdefault(parts[-2], []).append(
                    (member.name, tar.extractfile(member).read())
                )
    except tarfile.TarError as exc:
        raise BadValue(f"{path}: not a readable tar archive ({exc})") from None
    if not by_class:
        raise BadValue(f"{path}: no images found, expected members <split>/<class>/<image>")
    classes = sorted(by_class)
    items, labels = [], []
    for label, name in enumerate(classes):
        for _, data in sorted(by_class[name]):
            items.append(data)
            labels.append(label)
    return ImageListDataset(items, labels, classes, mode)


def load_split_dir_or_tar(root: Path, split: str, mode: str = "RGB") -> ImageListDataset | None:
    """`root/<split>/` unpacked, else `root/<split>.tar[.gz]`; None when neither exists."""
    if (root / split).is_dir():
        return load_class_folder(root / split, mode)
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if (root / f"{split}{suffix}").is_file():
            return load_class_tar(root / f"{split}{suffix}", mode)
    return None


def decode_to_arrays(images: ImageListDataset, size: int) -> ArrayDataset:
    """Decode every image once into uint8 N x C x size x size (CIFAR JPEGs: decode once, not per epoch)."""
    decoded = []
    for i in range(len(images)):
        array = np.asarray(images[i][0], dtype=np.uint8)
        if array.shape[:2] != (size, size):
            raise BadValue(
                f"{_name(images.items[i])}: image {array.shape[1]}x{array.shape[0]}, "
                f"expected {size}x{size}"
            )
        decoded.append(array[:, :, None] if array.ndim == 2 else array)
    pixels = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous()
    return ArrayDataset(pixels, torch.tensor(images.labels))


def _name(item) -> str:
    return str(item) if not isinstance(item, bytes) else "an archived image"

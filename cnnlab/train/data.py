"""Data specs, per-data-set augmentation and loaders with a distributed-friendly sampler.

`--data digits | mnist:PATH | fashion-mnist:PATH | cifar10:PATH | cifar100:PATH | folder:PATH`.
The training sampler is always an `EpochSampler` (a `DistributedSampler`, num_replicas =
world_size, 1 alone): one shuffle per epoch, a function of (seed, epoch) only, split into
disjoint per-rank shards (Goyal et al. 2017, Remark 4), and each image's augmentation is seeded
by (seed, epoch, index) (`cnnlab.train.sampling`). Call `train_loader.sampler.set_epoch(epoch)`
at the start of every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cnnlab.errors import BadValue
from cnnlab.train import datasets as ds
from cnnlab.train.sampling import EpochSampler, SeededSamples

DATA_KINDS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder")
ACCEPTED_FORMS = (
    "digits | mnist:PATH | fashion-mnist:PATH | cifar10:PATH | cifar100:PATH | folder:PATH"
)

# Per-channel mean/std of the training images in [0, 1] (published values; digits: measured
# on the 80% training split of sklearn's digits). Folders use the ImageNet statistics.
DATA_STATS = {
    "digits": ((0.3054,), (0.3760,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "folder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100}
SHIFT_PAD = {"digits": 1, "mnist": 2, "fashion-mnist": 2}  # small random shift (pixels)
FOLDER_IMAGE_SIZE = 224  # ImageNet-style default crop
CENTER_CROP_RATIO = 0.875  # resize to size / 0.875 then center-crop (256 -> 224)


@dataclass(frozen=True)
class DataSpec:
    """A parsed `--data` value: the data set kind and, except for digits, its path."""

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(text: str | DataSpec) -> DataSpec:
    """`kind[:PATH]` -> DataSpec; the path must exist (digits takes none)."""
    if isinstance(text, DataSpec):
        return text
    kind, sep, path = str(text).partition(":")
    kind = kind.strip().lower()
    if kind not in DATA_KINDS:
        raise BadValue(f"unknown data spec {text!r}: expected {ACCEPTED_FORMS}")
    if kind == "digits":
        if sep:
            raise BadValue(f"data spec {text!r}: digits takes no path; expected {ACCEPTED_FORMS}")
        return DataSpec("digits")
    if not path:
        raise BadValue(f"data spec {text!r}: {kind} needs a path, expected {kind}:PATH")
    root = Path(path).expanduser()
    if not root.exists():
        raise BadValue(f"data path {root} does not exist (from --data {text!r})")
    return DataSpec(kind, root)


# --- data sets ----------------------------------------------------------------------------------


def load_splits(spec: DataSpec) -> tuple[Dataset, Dataset, int, int]:
    """(train, val, num_classes, in_chans) for a spec, without transforms."""
    if spec.kind == "digits":
        return ds.load_digits_split(True), ds.load_digits_split(False), 10, 1
    if spec.kind in ("mnist", "fashion-mnist"):
        return ds.load_idx_split(spec.path, True), ds.load_idx_split(spec.path, False), 10, 1
    if spec.kind in ("cifar10", "cifar100"):
        return _load_cifar(spec.path, NUM_CLASSES[spec.kind])
    return _load_folders(spec.path, ("train",), ("val", "test"))


def _load_cifar(root: Path, num_classes: int) -> tuple[Dataset, Dataset, int, int]:
    """Pickle batches if present, else `train/`, `test/` class folders or their tar archives."""
    pickle_root = ds.cifar_pickle_root(root, num_classes)
    if pickle_root is not None:
        train = ds.load_cifar_pickles(pickle_root, num_classes, True)
        return train, ds.load_cifar_pickles(pickle_root, num_classes, False), num_classes, 3
    train, val, found, chans = _load_folders(root, ("train",), ("test", "val"))
    if found != num_classes:
        raise BadValue(f"{root}: {found} class folders, expected {num_classes} for CIFAR")
    return ds.decode_to_arrays(train, 32), ds.decode_to_arrays(val, 32), found, chans


def _load_folders(root: Path, train_names, val_names) -> tuple[Dataset, Dataset, int, int]:
    """Class folders (or tars) for the first existing train and val split names under `root`."""
    train = _first_split(root, train_names)
    val = _first_split(root, val_names)
    if train.classes != val.classes:
        raise BadValue(f"{root}: train classes {train.classes} differ from val {val.classes}")
    return train, val, len(train.classes), 3


def _first_split(root: Path, names) -> ds.ImageListDataset:
    for name in names:
        split = ds.load_split_dir_or_tar(root, name)
        if split is not None:
            return split
    wanted = " or ".join(f"{n}/ (or {n}.tar.gz)" for n in names)
    raise BadValue(f"{root}: no {wanted} found; expected class folders <split>/<class>/<image>")


# --- transforms ---------------------------------------------------------------------------------


def build_transforms(kind: str, native_size: int, image_size: int | None, augment: bool):
    """(train, val) transforms: per-kind augmentation, then float in [0, 1] and mean/std."""
    from torchvision.transforms import v2  # seconds of imports: only when a run needs it

    mean, std = DATA_STATS[kind]
    finish = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if kind == "folder":
        size = image_size or FOLDER_IMAGE_SIZE
        train = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
        val = [v2.Resize(round(size / CENTER_CROP_RATIO), antialias=True), v2.CenterCrop(size)]
        return v2.Compose(
            [v2.ToImage(), *train, *finish] if augment else [v2.ToImage(), *val, *finish]
        ), v2.Compose([v2.ToImage(), *val, *finish])
    size = image_size or native_size  # small images keep their size: no upscaling to 224
    cifar = kind in ("cifar10", "cifar100")
    pad = 4 if cifar else SHIFT_PAD[kind]  # CIFAR: He et al. 2016, §4.2; else a small shift
    if size == native_size:  # the fast path: ~10x cheaper per image than the v2 pipeline
        train = SmallImageTransform(mean, std, pad if augment else 0, flip=cifar and augment)
        return train, SmallImageTransform(mean, std)
    resize = [v2.Resize(size, antialias=True)]
    aug = [v2.RandomCrop(size, padding=pad)] + ([v2.RandomHorizontalFlip()] if cifar else [])
    train = [v2.ToImage(), *resize, *(aug if augment else []), *finish]
    return v2.Compose(train), v2.Compose([v2.ToImage(), *resize, *finish])


class SmallImageTransform:
    """Random shift (zero-pad `pad`, crop back) [+ horizontal flip], then (x / 255 - mean) / std."""

    def __init__(self, mean, std, pad: int = 0, flip: bool = False):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.pad, self.flip = pad, flip

    def __call__(self, image) -> torch.Tensor:
        x = image if isinstance(image, torch.Tensor) else pil_to_uint8(image)
        if self.pad:
            h, w = x.shape[-2:]
            x = torch.nn.functional.pad(x, (self.pad,) * 4)
            i, j = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            x = x[:, i : i + h, j : j + w]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x.float() / 255 - self.mean) / self.std


def pil_to_uint8(image) -> torch.Tensor:
    """PIL image -> uint8 tensor C x H x W."""
    array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


# --- loaders ------------------------------------------------------------------------------------

NATIVE_SIZE = {"digits": 8, "mnist": 28, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32}


def build_loaders(
    spec: str | DataSpec,
    *,
    batch_size: int,
    image_size: int | None = None,
    augment: bool = True,
    workers: int = 0,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
) -> tuple[DataLoader, DataLoader, int, int]:
    """(train_loader, val_loader, num_classes, in_chans); `batch_size` is per rank.

    Train: DistributedSampler(shuffle, seed, drop_last) over `world_size` ranks, so the order of
    an epoch is fixed by (seed, epoch) and ranks see disjoint shards (the < world_size images left
    over by the split are skipped, different ones each epoch). Val: in order, sharded likewise
    when world_size > 1 (DistributedSampler pads to equal shards).
    """
    spec = parse_data_spec(spec)
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise BadValue(
            f"need batch_size >= 1 and 0 <= rank < world_size, got batch_size="
            f"{batch_size}, rank={rank}, world_size={world_size}"
        )
    train, val, num_classes, in_chans = load_splits(spec)
    train_tf, val_tf = build_transforms(
        spec.kind, NATIVE_SIZE.get(spec.kind, 32), image_size, augment
    )
    train.transform, val.transform = train_tf, val_tf
    train_sampler = EpochSampler(
        train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    val_sampler = (
        DistributedSampler(val, num_replicas=world_size, rank=rank, shuffle=False)
        if world_size > 1
        else None
    )
    common = dict(
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    return (
        DataLoader(SeededSamples(train, seed), sampler=train_sampler, **common),
        DataLoader(val, sampler=val_sampler, shuffle=False, **common),
        num_classes,
        in_chans,
    )

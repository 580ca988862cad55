"""Tensor sources: file round trips, clear errors for bad files, and the synthetic generators."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.common import TasdsimError
from tasdsim.traces.tensors import (
    gaussian,
    laplacian,
    load_tensor,
    load_tensors,
    magnitude_pruned,
    nm_sparse,
    quantize_int8,
    relu_activations,
    save_safetensors,
    synthetic,
    tensor_shapes,
)

BF16 = np.dtype(ml_dtypes.bfloat16)


def sample(dtype) -> np.ndarray:
    values = np.random.default_rng(7).standard_normal((3, 5)) * 20
    return values.astype(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_npy_round_trip(tmp_path, dtype):
    tensor = sample(dtype)
    np.save(tmp_path / "w.npy", tensor)
    assert same_bits(load_tensor(str(tmp_path / "w.npy")), tensor)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_npz_round_trip(tmp_path, dtype):
    tensor = sample(dtype)
    np.savez_compressed(tmp_path / "m.npz", other=np.zeros(2), fc1=tensor)
    assert same_bits(load_tensor(f"{tmp_path}/m.npz:fc1"), tensor)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.int8])
def test_safetensors_round_trip(tmp_path, dtype):
    tensor = sample(dtype)
    save_safetensors(tmp_path / "m.safetensors", {"layer.0.weight": tensor, "bias": np.ones(3, np.float32)})
    loaded = load_tensor(f"{tmp_path}/m.safetensors:layer.0.weight")
    assert same_bits(loaded, tensor)


def test_safetensors_bf16_keeps_raw_bits(tmp_path):
    bits = np.array([0x3F80, 0xC049, 0x0001, 0x7F7F, 0x8000], dtype=np.uint16)  # 1, -3.14, tiny, max, -0
    save_safetensors(tmp_path / "b.safetensors", {"w": bits.view(BF16)})
    loaded = load_tensor(f"{tmp_path}/b.safetensors:w")
    assert loaded.dtype == BF16
    assert np.array_equal(loaded.view(np.uint16), bits)


def test_tensor_names_may_hold_colons(tmp_path):
    tensors = {"a:b:c": sample(np.float32), "a": sample(np.float16)}
    save_safetensors(tmp_path / "m.safetensors", tensors)
    assert same_bits(load_tensor(f"{tmp_path}/m.safetensors:a:b:c"), tensors["a:b:c"])
    assert same_bits(load_tensor(f"{tmp_path}/m.safetensors:a"), tensors["a"])


def test_archive_with_one_tensor_needs_no_key(tmp_path):
    tensor = sample(np.float32)
    np.savez(tmp_path / "one.npz", only=tensor)
    save_safetensors(tmp_path / "one.safetensors", {"only": tensor})
    assert same_bits(load_tensor(str(tmp_path / "one.npz")), tensor)
    assert same_bits(load_tensor(str(tmp_path / "one.safetensors")), tensor)


@pytest.mark.parametrize("name", ["two.npz", "two.safetensors"])
def test_archive_with_many_tensors_needs_a_key(tmp_path, name):
    tensors = {"first": np.ones(2, np.float32), "second": np.zeros(3, np.float32)}
    if name.endswith(".npz"):
        np.savez(tmp_path / name, **tensors)
    else:
        save_safetensors(tmp_path / name, tensors)
    with pytest.raises(TasdsimError, match=r"holds 2 tensors.*first, second"):
        load_tensor(str(tmp_path / name))


def test_load_tensors_and_shapes(tmp_path):
    tensors = {
        "zeta": sample(np.float32),
        "alpha": np.ones((2, 3, 4), np.int8),
        "mid": np.ones(7, np.float16),
    }
    np.savez(tmp_path / "m.npz", **tensors)
    save_safetensors(tmp_path / "m.safetensors", tensors)
    np.save(tmp_path / "w.npy", tensors["alpha"])

    from_npz = load_tensors(str(tmp_path / "m.npz"))
    assert list(from_npz) == ["zeta", "alpha", "mid"]  # archive order
    from_st = load_tensors(str(tmp_path / "m.safetensors"))
    assert list(from_st) == ["alpha", "mid", "zeta"]  # sorted by name
    for loaded in (from_npz, from_st):
        assert all(same_bits(loaded[k], tensors[k]) for k in tensors)

    for path, loaded in [("m.npz", from_npz), ("m.safetensors", from_st)]:
        assert tensor_shapes(str(tmp_path / path)) == {k: v.shape for k, v in loaded.items()}
    assert tensor_shapes(str(tmp_path / "w.npy")) == {"w": (2, 3, 4)}
    assert list(load_tensors(str(tmp_path / "w.npy"))) == ["w"]


# ---------------------------------------------------------------- bad files


def write_valid(tmp_path, name: str) -> str:
    path = tmp_path / name
    tensor = np.arange(4096, dtype=np.float32)
    if name.endswith(".npy"):
        np.save(path, tensor)
    elif name.endswith(".npz"):
        np.savez_compressed(path, w=tensor)
    else:
        save_safetensors(path, {"w": tensor})
    return str(path)


def truncated(tmp_path, name: str) -> str:
    path = write_valid(tmp_path, name)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return path


def garbage(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"this is not a tensor file at all" * 4)
    return str(path)


def object_npy(tmp_path, name: str) -> str:
    path = tmp_path / name
    np.save(path, np.array([1, "x", None], dtype=object), allow_pickle=True)
    return str(path)


def object_npz(tmp_path, name: str) -> str:
    path = tmp_path / name
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    return str(path)


def bf16_npy(tmp_path, name: str) -> str:
    path = tmp_path / name
    np.save(path, np.ones(3, BF16))  # numpy stores it as raw 2-byte voids
    return str(path)


@pytest.mark.parametrize(
    "make, name, key",
    [
        (lambda t, n: str(t / n), "missing.npy", None),
        (lambda t, n: str(t / n), "missing.safetensors", "w"),
        (write_valid, "m.npz", "nope"),
        (write_valid, "m.safetensors", "nope"),
        (garbage, "g.npy", None),
        (garbage, "g.npz", "w"),
        (garbage, "g.safetensors", "w"),
        (truncated, "t.npy", None),
        (truncated, "t.npz", "w"),
        (truncated, "t.safetensors", "w"),
        (object_npy, "o.npy", None),
        (object_npz, "o.npz", "w"),
        (bf16_npy, "b.npy", None),
        (write_valid, "m.npy", "w"),  # an .npy has no keys
        (write_valid, "m.npz", ""),  # empty key
        (lambda t, n: str(t), "", None),  # a directory, no extension
        (garbage, "w.pt", None),
        (garbage, "w.npy.bak", None),
    ],
)
def test_bad_file_is_one_clear_error(tmp_path, make, name, key):
    path = make(tmp_path, name)
    spec = path if key is None else f"{path}:{key}"
    with pytest.raises(TasdsimError) as info:
        load_tensor(spec)
    message = str(info.value)
    assert "\n" not in message
    assert (name or str(tmp_path)) in message
    if make is write_valid and key:  # the file is fine, the key is not
        assert key in message


@pytest.mark.parametrize(
    "make, name", [(garbage, "g.npz"), (truncated, "t.safetensors"), (truncated, "t.npz"), (garbage, "g.npy")]
)
def test_bad_file_when_listing(tmp_path, make, name):
    path = make(tmp_path, name)
    for read in (load_tensors, tensor_shapes):
        with pytest.raises(TasdsimError, match=name):
            read(path)


def test_directory_named_like_a_tensor_file(tmp_path):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(TasdsimError, match="d.npz: not a regular file"):
        load_tensors(str(tmp_path / "d.npz"))


def test_save_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TasdsimError, match=r"x\.safetensors.*complex64"):
        save_safetensors(tmp_path / "x.safetensors", {"w": np.ones(2, np.complex64)})


# ---------------------------------------------------------------- synthetic generators


def group_sizes_and_counts(tensor: np.ndarray, m: int, axis: int) -> list[tuple[int, int]]:
    """(group length, non-zeros) for every group of m consecutive elements along axis, by brute force."""
    lanes = np.moveaxis(tensor, axis, -1)
    k = lanes.shape[-1]
    return [
        (min(m, k - start), int(np.count_nonzero(lanes[idx][start : start + m])))
        for idx in np.ndindex(lanes.shape[:-1])
        for start in range(0, k, m)
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: gaussian((8, 9), seed),
        lambda seed: laplacian((8, 9), seed, scale=0.5),
        lambda seed: relu_activations((8, 9), 0.5, seed),
        lambda seed: nm_sparse((8, 9), 2, 4, seed),
        lambda seed: synthetic("gaussian:pruned=0.7,int8", (8, 9), seed),
    ],
)
def test_generators_are_deterministic_per_seed(make):
    assert same_bits(make(3), make(3))
    assert not np.array_equal(make(3), make(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
def test_generators_keep_dtype(dtype):
    assert gaussian(5, 0, dtype=dtype).dtype == dtype
    assert relu_activations((4, 4), 0.25, 0, dtype=dtype).dtype == dtype
    assert nm_sparse((4, 8), 1, 4, 0, dtype=dtype).dtype == dtype


@pytest.mark.parametrize(
    "shape, n, m, axis",
    [
        ((6, 16), 2, 4, -1),
        ((5, 18), 2, 4, 1),  # K = 18: last group of 2
        ((7, 13), 3, 8, -1),  # last group of 5
        ((3, 10), 4, 8, 1),  # last group of 2 < n
        ((4, 6), 1, 1, 0),
        ((3, 12, 3, 3), 2, 4, 1),  # conv weight, groups along Cin
        ((2, 10, 3, 2), 1, 4, 1),  # Cin = 10: last group of 2
        ((2, 3, 2, 9), 2, 8, -1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_nm_sparse_groups(shape, n, m, axis, dtype):
    tensor = nm_sparse(shape, n, m, seed=11, axis=axis, dtype=dtype)
    assert tensor.shape == shape
    for length, nonzeros in group_sizes_and_counts(tensor, m, axis):
        assert nonzeros == min(n, length)


def test_nm_sparse_slots_vary():
    tensor = nm_sparse((64, 4), 2, 4, seed=0)
    assert len({tuple(row != 0) for row in tensor}) == 6  # all C(4, 2) masks occur


def test_relu_activations_exact_sparsity():
    for sparsity in (0.0, 0.3, 0.6, 1.0):
        tensor = relu_activations((7, 11, 3), sparsity, seed=2)
        assert np.count_nonzero(tensor == 0) == round(sparsity * tensor.size)
        assert (tensor >= 0).all()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-5, 5), min_size=1, max_size=40),
    sparsity=st.floats(0, 1),
)
def test_magnitude_pruned_matches_brute_force(values, sparsity):
    tensor = np.array(values, dtype=np.float32).reshape(-1, 1)
    pruned = magnitude_pruned(tensor, sparsity)
    count = round(sparsity * tensor.size)
    order = sorted(range(len(values)), key=lambda i: (abs(values[i]), i))
    expected = np.array(values, dtype=np.float32)
    expected[order[:count]] = 0
    assert same_bits(pruned, expected.reshape(-1, 1))
    assert np.array_equal(tensor.ravel(), values)  # input untouched


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 20),
    sparsity=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_pruned_gaussian_exact_zero_count(rows, cols, sparsity, seed):
    pruned = magnitude_pruned(gaussian((rows, cols), seed), sparsity)
    assert np.count_nonzero(pruned == 0) == round(sparsity * rows * cols)


def test_quantize_int8():
    assert np.array_equal(quantize_int8(np.array([127.0, 0.5, 1.5, -2.5, -127.0])), [127, 0, 2, -2, -127])
    q = quantize_int8(laplacian((50, 50), seed=5))
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert 127 in np.abs(q.astype(np.int16))
    assert np.array_equal(quantize_int8(np.zeros((2, 3))), np.zeros((2, 3), np.int8))
    with pytest.raises(TasdsimError):
        quantize_int8(np.array([1.0, np.nan]))


# ---------------------------------------------------------------- the synthetic spec language


def test_synthetic_specs():
    shape = (8, 16)
    assert same_bits(synthetic("gaussian", shape, 1), gaussian(shape, 1))
    assert same_bits(synthetic(" Laplacian:scale=0.5 ", shape, 1), laplacian(shape, 1, scale=0.5))
    pruned = magnitude_pruned(gaussian(shape, 1, std=0.02), 0.7)
    assert same_bits(synthetic("gaussian:std=0.02:pruned=0.7", shape, 1), pruned)
    assert same_bits(synthetic("relu:sparsity=0.6", shape, 1), relu_activations(shape, 0.6, 1))
    assert same_bits(synthetic("nm:2:4", shape, 1), nm_sparse(shape, 2, 4, 1))
    assert same_bits(synthetic("nm:1:4:axis=0", shape, 1), nm_sparse(shape, 1, 4, 1, axis=0))
    conv = (4, 8, 3, 3)  # groups along Cin by default
    assert same_bits(synthetic("nm:2:4", conv, 1), nm_sparse(conv, 2, 4, 1, axis=1))
    assert same_bits(synthetic("nm:2:4", 10, 1), nm_sparse(10, 2, 4, 1))
    assert synthetic("gaussian,bfloat16", shape, 1).dtype == BF16
    assert synthetic("gaussian,float16", shape, 1).dtype == np.float16


def test_synthetic_int8_keeps_zero_pattern():
    relu = synthetic("relu:sparsity=0.6,int8", (20, 30), seed=3)
    assert relu.dtype == np.int8 and np.count_nonzero(relu == 0) == 360 and relu.min() >= 0
    nm = synthetic("nm:2:8,int8", (10, 21), seed=3)
    assert all(nonzeros == min(2, length) for length, nonzeros in group_sizes_and_counts(nm, 8, -1))
    dense = synthetic("laplacian,int8", (30, 30), seed=3)
    assert np.count_nonzero(dense) == dense.size and np.abs(dense.astype(np.int16)).max() == 127


@pytest.mark.parametrize(
    "spec",
    [
        "", "uniform", "gaussian:pruned=1.5", "gaussian:sparsity=0.5", "gaussian:std=0", "gaussian:std=1:std=2",
        "gaussian,int4", "laplacian:scale", "relu", "relu:sparsity=x", "nm:2", "nm:5:4", "nm:a:4", "nm:2:4:axis=2",
    ],
)
def test_bad_synthetic_spec(spec):
    with pytest.raises(TasdsimError, match=f'synthetic tensor "{spec}"') as info:
        synthetic(spec, (4, 8), seed=0)
    if spec in ("", "uniform"):
        assert "gaussian" in str(info.value) and "nm:N:M" in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: gaussian((4, 0), 0),
        lambda: gaussian((), 0),
        lambda: gaussian((2.5, 3), 0),
        lambda: gaussian(2.5, 0),
        lambda: gaussian((4,), 0, dtype=np.int8),
        lambda: laplacian(4, 0, scale=-1),
        lambda: relu_activations((4,), -0.1, 0),
        lambda: relu_activations((4,), 1.1, 0),
        lambda: magnitude_pruned(np.ones(4), 2),
        lambda: nm_sparse((4, 8), 0, 4, 0),
        lambda: nm_sparse((4, 8), 5, 4, 0),
        lambda: nm_sparse((4, 8), 2, 4, 0, axis=2),
        lambda: nm_sparse((4, 8), 2, 4, 0, axis=-3),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(TasdsimError):
        call()

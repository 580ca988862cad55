"""A catalogue of bad and extreme command lines, run in-process: each is one line on stderr and
exit 2 (the input contract's limits, misleading combinations, numbers in every spelling)."""
import numpy as np
import pytest

from cli_helpers import assert_one_line_error, cli

G = ["simulate", "--hw", "vegeta-m4", "--gemm"]
S = ["simulate", "--hw", "vegeta-m4", "--gemm", "64x64x64", "--set"]
CASES = {
    "gemm_negative": (G + ["-1x2x3"], "--gemm"),
    "gemm_zero": (G + ["0x1x1"], "0x1x1"),
    "gemm_two_dims": (G + ["1x1"], "MxNxK"),
    "gemm_fullwidth": (G + ["１x2x3"], "MxNxK"),
    "gemm_digits": (G + ["99999999999999x2x3"], "at most"),
    "gemm_dim_limit": (G + ["4294967297x1x1"], "limit"),
    "gemm_macs_limit": (G + ["4294967296x4294967296x1024"], "MACs exceed"),
    "gemm_folds_limit": (G + ["64x8192x8192", "--set", "pe_array.rows=1", "--set", "pe_array.cols=1"], "folds exceed"),
    "layers_with_gemm": (G + ["8x8x8", "--layers", "fc"], "--layers"),
    "clock_1e5": (S + ["clock_ghz=1.0e5"], "clock_ghz: must be a number from 0.001 to 1000"),
    "clock_tiny": (S + ["clock_ghz=1.0e-300"], "clock_ghz"),
    "clock_nan": (S + ["clock_ghz=.nan"], "clock_ghz"),
    "latency_huge": (S + ["metadata_decoder.latency=4000000000000000000"], "1,000,000"),
    "channels_huge": (S + ["dram.channels=1000000000"], "dram.channels: must be an integer from 1 to 64"),
    "channels_1e9": (S + ["dram.channels=1e9"], "dram.channels"),
    "rows_fraction": (S + ["pe_array.rows=2.5"], "pe_array.rows"),
    "rows_beyond": (S + ["pe_array.rows=4097"], "4,096"),
    "buffer_huge": (S + ["buffers.inputs.size_kib=1048577"], "size_kib"),
    "psum_bytes": (S + ["psum_bytes=9"], "psum_bytes"),
    "digits_5000": (S + ["pe_array.rows=" + "9" * 5000], "pe_array.rows"),
    "max_terms_big": (["search", "--workload", "resnet50", "--patterns", "1:4", "--quality", "relative_error<=0.3",
                       "--max-terms", "2000"], "--max-terms"),
    "candidates": (["search", "--workload", "resnet50", "--quality", "relative_error<=0.3", "--max-terms", "8",
                    "--patterns", ",".join(f"1:{m}" for m in range(2, 40))], "candidates"),
    "series_terms": (["simulate", "--hw", "vegeta-m4", "--gemm", "8x8x8", "--tasd", "+".join(["1:4"] * 9)], "limit"),
    "seed_negative": (G + ["8x8x8", "--seed", "-1"], "--seed"),
    "jobs_zero": (G + ["8x8x8", "--jobs", "0"], "--jobs"),
    "sparsity_nan": (G + ["8x8x8", "--act-sparsity", "nan"], "--act-sparsity"),
    "batch_huge": (["simulate", "--hw", "vegeta-m4", "--workload", "resnet50", "--batch", "65537"], "--batch"),
    "functional_bytes": (G + ["60000x60000x4096", "--functional"], "functional"),
    "unknown_option": (["simulate", "--bogus"], "unrecognized"),
    "bad_choice": (G + ["8x8x8", "--memory", "fake"], "--memory"),
    "decompose_out_dir": (["decompose", "{d}/w.npy", "--series", "2:4", "--out", "{d}"], ".npz"),
    "nan_tensor": (["decompose", "{d}/nan.npy", "--series", "2:4"], "nan.npy: the tensor holds NaN"),
    "liar_header": (["decompose", "{d}/liar.npy", "--series", "2:4"], "liar.npy"),
    "sweep_points": (["sweep", "{d}/many.yaml", "--out", "{d}/o"], "limit"),
    "sweep_max_terms": (["sweep", "{d}/abc.yaml", "--out", "{d}/o"], "max_terms"),
    "hw_random_bytes": (["simulate", "--hw", "{d}/rand.yaml", "--gemm", "8x8x8"], "rand.yaml"),
    "workload_repeat": (["simulate", "--hw", "vegeta-m4", "--workload", "{d}/repeat.yaml"], "repeat"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "w.npy", np.ones((4, 8), np.float32))
    np.save(d / "nan.npy", np.array([[1, np.nan, 2, 3]], np.float32))
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2), np.float32))
    header["shape"] = (100000, 100000)
    with open(d / "liar.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(64))
    axes = "".join(f"  {k}: [{', '.join(map(str, range(1, 31)))}]\n"
                   for k in ("pe_array.rows", "pe_array.cols", "dram.channels", "tasd_units.count"))
    (d / "many.yaml").write_text(f"hw: vegeta-m4\nworkload: {{gemm: 8x8x8}}\naxes:\n{axes}")
    (d / "abc.yaml").write_text("hw: vegeta-m4\nworkload: {gemm: 8x8x8}\nmax_terms: abc\n")
    (d / "rand.yaml").write_bytes(bytes(range(256)) * 2)
    (d / "repeat.yaml").write_text("parameters: {batch: 1}\nlayers:\n  - name: 'b{i}'\n    repeat: 100000000\n"
                                   "    layers: [{name: l, kind: linear, in_features: 8, out_features: 8, tokens: 1}]\n")
    return d


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line(files, capsys, case):
    argv, needle = CASES[case]
    try:
        code, _, err = cli(capsys, *[a.replace("{d}", str(files)) for a in argv])
    except SystemExit as stop:  # argparse's errors, one line through cli.Parser
        code, err = stop.code, capsys.readouterr().err
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize("spelling", ["1e0", "1.0e0", "1E+0", "1.0"])
def test_numbers_in_every_spelling(capsys, spelling):
    code, out, err = cli(capsys, *S, f"clock_ghz={spelling}", "--json")
    assert code == 0, err

"""Bad input to `statecast convert`: one line naming the problem, non-zero exit, no traceback,
no partial artifact."""
import os
import subprocess
import sys

import keras
import pytest

from conftest import FIXTURES, MACHINE_TEMPERATURE


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "statecast.daemon", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("statecast ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


def save_model(path, *layers, features=1):
    inputs = keras.Input((None, features))
    h = inputs
    for layer in layers:
        h = layer(h)
    keras.Model(inputs, h).save(path)
    return str(path)


@pytest.mark.parametrize("content,needle", [
    (b"", "not a Keras model"),
    (b"hello, I am a text file\n", "not a Keras model"),
    (b"PK\x03\x04truncated", "truncated or corrupt"),
])
def test_wrong_or_corrupt_file(tmp_path, content, needle):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    out = tmp_path / "artifact"
    assert_one_line_error(run_cli("convert", str(path), "--out", str(out)), needle)
    assert not out.exists()


def test_truncated_real_model(tmp_path):
    blob = open(os.path.join(FIXTURES, "lstm.keras"), "rb").read()
    path = tmp_path / "cut.keras"
    path.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "artifact"
    assert_one_line_error(run_cli("convert", str(path), "--out", str(out)), "cut.keras")
    assert not out.exists()


def test_truncated_h5(tmp_path):
    model_path = save_model(tmp_path / "m.h5", keras.layers.LSTM(4), keras.layers.Dense(1))
    blob = open(model_path, "rb").read()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(blob[: len(blob) // 3])
    assert_one_line_error(run_cli("convert", str(cut), "--out", str(tmp_path / "a")), "cut.h5")


@pytest.mark.parametrize("layers,needle", [
    (lambda: [keras.layers.Bidirectional(keras.layers.LSTM(4)), keras.layers.Dense(1)], "see the future"),
    (lambda: [keras.layers.Masking(), keras.layers.LSTM(4), keras.layers.Dense(1)], "masking"),
    (lambda: [keras.layers.Conv1D(4, 3), keras.layers.LSTM(4), keras.layers.Dense(1)], "not causal"),
    (lambda: [keras.layers.LSTM(4, go_backwards=True), keras.layers.Dense(1)], "go_backwards"),
    (lambda: [keras.layers.LSTM(4, activation="relu"), keras.layers.Dense(1)], "activation 'relu'"),
    (lambda: [keras.layers.GRU(4), keras.layers.Dense(1, activation="softmax")], "activation 'softmax'"),
    (lambda: [keras.layers.LSTM(4), keras.layers.RepeatVector(3), keras.layers.LSTM(4)], "RepeatVector"),
    (lambda: [keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(3), keras.layers.GRU(2)],
     "after a Dense head"),
])
def test_unsupported_layers_are_named(tmp_path, layers, needle):
    path = save_model(tmp_path / "m.keras", *layers())
    out = tmp_path / "artifact"
    assert_one_line_error(run_cli("convert", path, "--out", str(out)), needle)
    assert not out.exists()


def test_calibration_csv_with_bad_values(tmp_path):
    lines = open(MACHINE_TEMPERATURE).read().splitlines()[:400]
    lines[123] = lines[123].split(",")[0] + ",not-a-number"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "artifact"
    result = run_cli("convert", os.path.join(FIXTURES, "lstm.keras"), "--quantize", "int8",
                     "--calibration-csv", str(bad), "--out", str(out))
    assert_one_line_error(result, "bad.csv:124", "'value'")
    assert not out.exists()

    lines[123] = lines[123].split(",")[0] + ","
    bad.write_text("\n".join(lines) + "\n")
    assert_one_line_error(run_cli("convert", os.path.join(FIXTURES, "lstm.keras"), "--quantize", "int8",
                                  "--calibration-csv", str(bad), "--out", str(out)), "bad.csv:124")
    assert not out.exists()


def test_int8_without_calibration_is_refused(tmp_path):
    out = tmp_path / "artifact"
    assert_one_line_error(run_cli("convert", os.path.join(FIXTURES, "lstm.keras"), "--quantize", "int8",
                                  "--out", str(out)), "calibration")
    assert not out.exists()

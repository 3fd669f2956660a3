"""Legacy Keras 2 (tf_keras) .h5 files convert and match tf_keras' own outputs step by step."""
import os

import numpy as np

from conftest import FIXTURES
from statecast.convert import parity
from statecast.convert.convert_common import ConvertOptions
from statecast.convert.pipeline import convert
from statecast.daemon.model.step_model import StepModel


def test_tf_keras_h5_matches_keras2_reference(tmp_path):
    out = str(tmp_path / "legacy")
    manifest = convert(ConvertOptions(model_path=os.path.join(FIXTURES, "legacy_tf_keras.h5"), mode="float32",
                                      out_dir=out))
    assert [layer["cell"] for layer in manifest["layers"]] == ["lstm", "gru", "rnn"]
    assert manifest["layers"][1]["reset_after"] is False
    assert manifest["features"] == ["f0", "f1"] and manifest["horizon"] == 3
    reference = np.load(os.path.join(FIXTURES, "legacy_tf_keras_reference.npz"))
    step_out = parity.run_step_model(StepModel(out), reference["x"])        # (300, 3)
    error = np.max(np.abs(step_out - reference["y"])) / np.ptp(reference["y"])
    assert error <= 1e-5, error

"""Read a shipped float32 GRU step model's weights back into a Keras model of the same shape.

    .venv/bin/python models/recover_keras.py TEMPLATE.keras models/default/model.tflite OUT.keras

models/default's original .keras was not kept when it was built; issue 15 needed it to re-convert
default-int8 with another calibration without retraining (retraining is not bit-reproducible).
TEMPLATE is any Keras model of the same architecture (a run of build_default.sh); its weights are
replaced by the ones the .tflite holds. The graph is walked from the head back through the GRU
step exactly as convert/step_graph.py builds it (reset_after GRU, 1 - z as sigmoid(-a_z)); the
result converts back to a float32 model whose outputs match the shipped one to float rounding.
"""
import sys

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(template: str, tflite: str, out: str) -> None:
    it = Interpreter(tflite)
    it.allocate_tensors()
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    producer = {int(o): op for op in ops for o in op["outputs"]}

    def fc(tensor):                     # (W (in, units), b) of the FULLY_CONNECTED producing tensor
        op = producer[int(tensor)]
        assert op["op_name"] == "FULLY_CONNECTED", op
        return it.get_tensor(op["inputs"][1]).T, it.get_tensor(op["inputs"][2])

    def inputs_of(tensor, name):
        op = producer[int(tensor)]
        assert op["op_name"] == name, op
        return [int(i) for i in op["inputs"]]

    def gate(pre):                      # sigmoid gate: ADD(x FC, h FC); input 1 is x, input 0 is h
        a, b = inputs_of(pre, "ADD")
        if int(producer[a]["inputs"][0]) != 1:
            a, b = b, a
        return fc(a), fc(b)

    head = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"][-1]
    m1, m2 = inputs_of(head["inputs"][0], "ADD")           # h' = z * h + (1 - z) * candidate
    if 0 not in inputs_of(m1, "MUL"):
        m1, m2 = m2, m1
    z_pre = inputs_of([i for i in inputs_of(m1, "MUL") if i != 0][0], "LOGISTIC")[0]
    not_z, cand = inputs_of(m2, "MUL")
    if producer[not_z]["op_name"] != "LOGISTIC":
        not_z, cand = cand, not_z
    cx, cr = inputs_of(inputs_of(cand, "TANH")[0], "ADD")  # candidate: x W_h + r * (h U_h + b_rec)
    if producer[cx]["op_name"] != "FULLY_CONNECTED":
        cx, cr = cr, cx
    r, h_rec = inputs_of(cr, "MUL")
    if producer[r]["op_name"] != "LOGISTIC":
        r, h_rec = h_rec, r
    (zx, zbx), (zh, zbh) = gate(z_pre)
    (rx, rbx), (rh, rbh) = gate(inputs_of(r, "LOGISTIC")[0])
    (hx, hbx), (hh, hbh) = fc(cx), fc(h_rec)
    model = keras.models.load_model(template)
    gru = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)][0]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][0]
    gru.set_weights([np.concatenate([zx, rx, hx], axis=1), np.concatenate([zh, rh, hh], axis=1),
                     np.stack([np.concatenate([zbx, rbx, hbx]), np.concatenate([zbh, rbh, hbh])])])
    dense.set_weights(list(fc(head["outputs"][0])))
    model.save(out)
    print("saved", out)


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""Undo ONNX Runtime's dynamic int8 quantization of a graph: each DynamicQuantizeLinear +
MatMulInteger (+ Cast, scale Mul) becomes a float MatMul on the dequantized weights
((w - zero_point) * scale), and each DequantizeLinear of a constant becomes that float constant.

The float32 graph of a model whose float weights were not kept (``bench/openvino_probe.py``
uses it for the student the benchmark's ``best/`` holds): its weights are the int8 ones,
exactly, so another engine's int8 of it is the same student, not a retrained one.

usage: python bench/dequantize_onnx.py IN.onnx OUT.onnx
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize(graph_in: Path, graph_out: Path) -> int:
    model = onnx.load(str(graph_in))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)

    def value(name: str) -> np.ndarray:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return numpy_helper.to_array(consts[name].attribute[0].t)

    drop: set[int] = set()
    new_inits: list[onnx.TensorProto] = []
    replaced: dict[int, onnx.NodeProto] = {}
    count = 0
    for n in g.node:
        if n.op_type == "MatMulInteger":
            aq, wq, _azp, wzp = n.input
            dql = producer[aq]
            a_float = dql.input[0]
            cast = consumers[n.output[0]][0]
            mul = consumers[cast.output[0]][0]
            scales = producer[mul.input[1]]  # Mul(activation scale, weight scale)
            w_scale = next(value(i) for i in scales.input if i in inits or i in consts)
            w = (value(wq).astype(np.float32) - value(wzp).astype(np.float32)) * w_scale
            name = wq + "_dequantized"
            new_inits.append(numpy_helper.from_array(w.astype(np.float32), name))
            replaced[id(mul)] = helper.make_node("MatMul", [a_float, name], [mul.output[0]])
            drop.update({id(n), id(cast), id(scales), id(dql)})
            count += 1
        elif n.op_type == "DequantizeLinear" and all(i in inits or i in consts for i in n.input):
            x, scale, *zp = (value(i) for i in n.input)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and x.ndim > 1:
                shape = [1] * x.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zp = [z.reshape(shape) for z in zp]
            w = (x.astype(np.float32) - (zp[0].astype(np.float32) if zp else 0.0)) * scale
            new_inits.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
            drop.add(id(n))
            count += 1
    nodes = [replaced.get(id(n), n) for n in g.node if id(n) not in drop or id(n) in replaced]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(graph_out))
    return count


if __name__ == "__main__":
    print(dequantize(Path(sys.argv[1]), Path(sys.argv[2])), "nodes dequantized")

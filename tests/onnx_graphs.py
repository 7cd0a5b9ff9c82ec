"""A tiny builder for hand-made ONNX graphs with chosen zero channels."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    def __init__(self, shape=(1, 3, 8, 8), seed=0, dynamic_batch=True):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0
        dims = ["N", *shape[1:]] if dynamic_batch else list(shape)
        self.inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)]

    def name(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, array, prefix="c"):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, *inputs, outputs=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=self.name(op_type + "_"), **attrs)
        )
        return outs[0] if outputs == 1 else outs

    def conv(self, x, cin, cout, *, k=3, pad=None, group=1, zero=(), bias=True, bias_value=None):
        pad = k // 2 if pad is None else pad
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        b = (
            self.rng.standard_normal(cout).astype(np.float32)
            if bias_value is None
            else np.full(cout, bias_value, np.float32)
        )
        for c in zero:
            w[c] = 0
            b[c] = 0
        inputs = [x, self.const(w, "w")] + ([self.const(b, "b")] if bias else [])
        return self.op("Conv", *inputs, kernel_shape=[k, k], pads=[pad] * 4, group=group)

    def bn(self, x, c, *, shift=None, mean=None):
        scale = self.rng.uniform(0.5, 2, c).astype(np.float32)
        beta = np.zeros(c, np.float32) if shift is None else np.asarray(shift, np.float32)
        mu = np.zeros(c, np.float32) if mean is None else np.asarray(mean, np.float32)
        var = self.rng.uniform(0.5, 2, c).astype(np.float32)
        return self.op(
            "BatchNormalization",
            x,
            self.const(scale),
            self.const(beta),
            self.const(mu),
            self.const(var),
        )

    def gemm_weight(self, k, n, zero_out=()):
        w = self.rng.standard_normal((n, k)).astype(np.float32)
        b = self.rng.standard_normal(n).astype(np.float32)
        for c in zero_out:
            w[c] = 0
            b[c] = 0
        return self.const(w, "w"), self.const(b, "b")

    def model(
        self, *outputs, opset=17, ir_version=8, initializers_as_inputs=False, output_shape=None
    ):
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        inputs = list(self.inputs)
        if initializers_as_inputs:
            inputs += [
                helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.inits
            ]
        graph = helper.make_graph(self.nodes, "g", inputs, outs, initializer=self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version
        )
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(
            helper.make_tensor_value_info(f"{o}_probe", TensorProto.FLOAT, None) for o in outputs
        )
        for o in outputs:
            probe.graph.node.append(helper.make_node("Identity", [o], [f"{o}_probe"]))
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(probe).graph.value_info}
        for out in model.graph.output:
            out.CopyFrom(inferred[out.name])
            if output_shape is not None and not out.type.tensor_type.HasField("shape"):
                out.CopyFrom(
                    helper.make_tensor_value_info(out.name, TensorProto.FLOAT, output_shape)
                )
        onnx.checker.check_model(model)
        return model

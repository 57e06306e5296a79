"""The fast encoder: the same MiniLM weights run by onnxruntime, from a graph built at load time."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from storage.rag.minilm import F32, I64, Bert

_MS = "com.microsoft"  # onnxruntime's fused transformer kernels (BERT attention, skip-LayerNorm)
IR_VERSION = 8  # not onnx's newest (14): onnxruntime 1.17, the oldest we allow, reads up to 9


def _node(op: str, inputs: list[str], outputs: list[str], domain: str = "",
          **attrs: int | float) -> NodeProto:
    """A node named after its first output, so onnxruntime's errors point at the layer."""
    node = helper.make_node(op, inputs, outputs, name=outputs[0], domain=domain)
    node.attribute.extend(helper.make_attribute(key, value) for key, value in attrs.items())
    return node


def _weights_and_nodes(bert: Bert) -> tuple[dict[str, F32], list[NodeProto]]:
    """The initializers by name and the nodes that use them, embeddings first."""
    # BERT adds token type 0 to every position, so fold it into the position table once.
    inits = {
        "word": bert.word,
        "position": bert.position + bert.token_type,
        "emb_ln_g": bert.emb_ln_g,
        "emb_ln_b": bert.emb_ln_b,
    }
    nodes = [
        _node("EmbedLayerNormalization",
              ["input_ids", "", "word", "position", "", "emb_ln_g", "emb_ln_b"],
              ["h0", "unused_mask_index"], _MS, epsilon=bert.eps),
    ]
    for i, layer in enumerate(bert.layers):
        inits.update({f"l{i}.{f.name}": getattr(layer, f.name) for f in fields(layer)})
        nodes += _layer_nodes(f"l{i}.", f"h{i}", f"h{i + 1}", bert)
    return inits, nodes


def build_model(bert: Bert) -> bytes:
    """Serialized ONNX model: (input_ids, attention_mask) int32 -> last_hidden_state."""
    inits, nodes = _weights_and_nodes(bert)
    batch_seq: list[int | str] = ["batch", "seq"]
    graph = helper.make_graph(
        nodes, "main",
        inputs=[helper.make_tensor_value_info(n, TensorProto.INT32, batch_seq)
                for n in ("input_ids", "attention_mask")],
        outputs=[helper.make_tensor_value_info(
            f"h{len(bert.layers)}", TensorProto.FLOAT, [*batch_seq, bert.hidden])],
    )
    model = helper.make_model(
        graph, producer_name="trade-hub",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)],
    )
    model.ir_version = IR_VERSION
    # Weights go straight into the model's own graph: make_graph and make_model would each copy
    # all 90 MB again, which measured ~40% of the build time.
    for name, value in inits.items():
        model.graph.initializer.add().CopyFrom(numpy_helper.from_array(value, name))
    serialized: bytes = model.SerializeToString()  # the stubs type it Any
    return serialized


def _layer_nodes(p: str, x: str, out: str, bert: Bert) -> list[NodeProto]:
    """One BERT layer as fused kernels; biases ride along in SkipLayerNorm and BiasGelu."""
    return [
        _node("Attention", [x, p + "qkv_w", p + "qkv_b", "attention_mask"], [p + "ctx"], _MS,
              num_heads=bert.heads),
        _node("MatMul", [p + "ctx", p + "attn_out_w"], [p + "attn"]),
        _node("SkipLayerNormalization", [p + "attn", x, p + "ln1_g", p + "ln1_b", p + "attn_out_b"],
              [p + "x1"], _MS, epsilon=bert.eps),
        _node("MatMul", [p + "x1", p + "ff_in_w"], [p + "ff"]),
        _node("BiasGelu", [p + "ff", p + "ff_in_b"], [p + "act"], _MS),
        _node("MatMul", [p + "act", p + "ff_out_w"], [p + "ffo"]),
        _node("SkipLayerNormalization", [p + "ffo", p + "x1", p + "ln2_g", p + "ln2_b", p + "ff_out_b"],
              [out], _MS, epsilon=bert.eps),
    ]


class OnnxEncoder:
    """Runs the built graph on onnxruntime's CPU provider with a fixed number of threads."""

    name = "onnx"

    def __init__(self, bert: Bert, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Idle workers sleep instead of spinning: on a small box the event loop and Chroma need
        # those cycles, and measured throughput was the same either way.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(build_model(bert), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: I64, mask: I64) -> F32:
        """Last hidden state (batch, seq, hidden) for right-padded ids and their 0/1 mask."""
        feed = {"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32)}
        out: F32 = self._session.run(None, feed)[0]
        return out

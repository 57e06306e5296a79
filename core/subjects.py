"""NATS subject names: the one place that spells them."""

TRADES = "trades"
BACKTESTS_COMPLETED = "backtests.completed"
KNOWLEDGE_INDEX = "knowledge.index"
KNOWLEDGE_SEARCH = "knowledge.search"
HUB_PING = "hub.ping"  # request/reply: is a hub consuming this NATS?
# Request/reply questions about live outcomes (the REST query's fields as the JSON body).
PERFORMANCE = "hub.query.performance"
POSITIONS = "hub.query.positions"
PNL_SERIES = "hub.query.pnl"
CALIBRATION = "hub.query.calibration"
DECISION_SEARCH = "hub.query.decisions.search"
DECISION_SIMILAR = "hub.query.decisions.similar"
DECISION_RECALL = "hub.query.decisions.recall"
PERSISTED = "hub.persisted"
DLQ = "hub.dlq"
KNOWLEDGE_PROGRESS = "hub.progress.knowledge"  # files indexed so far, while a request runs

# What the durable stream captures: everything bots publish for the hub to persist.
STREAM_SUBJECTS = [f"{TRADES}.>", "backtests.>", KNOWLEDGE_INDEX]


def trade_subject(asset: str) -> str:
    """Subject a bot publishes a trade of ASSET on."""
    return f"{TRADES}.{asset}"


def persisted_subject(kind: str, *tokens: str) -> str:
    """Subject the hub announces a stored record on, e.g. hub.persisted.trades.BTC."""
    return ".".join((PERSISTED, kind, *tokens))


def dlq_subject(subject: str) -> str:
    """Dead-letter subject for an event rejected on SUBJECT."""
    return f"{DLQ}.{subject}"

"""The README's script (Scripts and the database schema), word for word, then what it read.

    python -m tests.support.programs.readme_recent_trades   (with the hub's HUB_* environment)
"""

from storage.database import SessionLocal, Trade
session = SessionLocal()
recent_trades = session.query(Trade).order_by(Trade.timestamp.desc()).limit(10).all()
session.close()

print([(t.id, t.asset, t.reasoning) for t in recent_trades])

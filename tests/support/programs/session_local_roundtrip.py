"""A script that writes a trade through SessionLocal and reads it back, on HUB_DATABASE_URL.

    python -m tests.support.programs.session_local_roundtrip

Prints the trade as read back, then the name of the driver the session used.
"""

from datetime import datetime, timezone

from storage.database import SessionLocal, Trade

with SessionLocal() as session:
    session.add(Trade(event_id="script-1", timestamp=datetime(2024, 1, 2, tzinfo=timezone.utc),
                      asset="ETH", action="SELL", price=2300.5, quantity=1.5, reasoning="from a script",
                      confidence=70, source="notebook", strategy=None))
    session.commit()
with SessionLocal() as session:
    print(repr(session.query(Trade).filter_by(event_id="script-1").one()))
    print(session.get_bind().dialect.driver)

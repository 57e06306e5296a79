"""What the tests and the benchmarks start and share: nats-server, the hub (in-process and as
`python main.py`), PostgreSQL databases, helper programs, trade payloads and polling."""

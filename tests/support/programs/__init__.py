"""Helper programs the tests and benchmarks run in processes of their own (see processes.py).

Each is a module run as `python -m tests.support.programs.<name>` in the repository root. Keep
this package free of imports: a program's fresh interpreter must load only what it uses.
"""

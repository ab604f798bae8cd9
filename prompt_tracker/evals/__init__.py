"""Test cases of a prompt and the runs that prove a version over them (durable data, in SQL).

The run's execution (jobs, the gate, provider calls) is the reply pipeline's: ``replies/eval_runs.py``.
"""

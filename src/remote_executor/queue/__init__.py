"""Queues: the role, SQS, and an in-memory twin for unit tests."""

from remote_executor.queue.base import Lease, Queue
from remote_executor.queue.memory import MemoryQueue

__all__ = ["Lease", "MemoryQueue", "Queue"]

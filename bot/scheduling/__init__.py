"""Scheduled work (digests, the health watch, housekeeping) that fires once per slot across replicas.

``slots`` is the pure arithmetic every replica agrees on; ``scheduler`` wraps APScheduler 3
so that each run claims its slot in SQL before doing anything.
"""

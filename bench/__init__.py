"""Benchmarks that print tables: this executor against its peers, on the local sandbox."""

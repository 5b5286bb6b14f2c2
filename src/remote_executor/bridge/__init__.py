"""The bridge beside DataHub: it reads GMS's change log and queues the execution requests
of the executor ids it serves, and it sweeps requests whose worker went silent.

forward holds the one rule both forms share (what is forwarded, and as what); events reads
GMS's Events API; offsets keeps how far it got; sweep ends stale requests; run is
``executor bridge``, and actions the datahub-actions plugin.
"""

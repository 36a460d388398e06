"""The tamper-evident audit chain around the store: the sealer that runs with the server
(sealer.py) and the operator's `run.py audit verify` and `run.py audit anchor` (commands.py). The
chain itself, its tables and its hashes, are storage/chain.py's."""

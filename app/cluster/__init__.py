"""Many processes, one board: Redis holds the ranks, nonces, limits and fan-out.

Everything in Redis is derived from the database, which stays the system of record."""

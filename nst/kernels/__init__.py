"""CPU kernels the library runs its networks with (no policy: callers decide where)."""

"""linebox web: the owner portal, the operator admin and the REST API (Litestar)."""

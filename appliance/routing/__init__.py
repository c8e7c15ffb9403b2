"""Routing: the plan compiled from the database, and the pure decision over it."""

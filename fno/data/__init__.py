"""Burgers data: random initial conditions, a verified solver, and grain data sources."""

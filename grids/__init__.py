"""The city's grids (网格): districts, streets, communities and grids, shared by dispatch and mediation.

A layer of its own between the domains and infra (pyproject.toml's import-linter layers): both
dispatch (incidents) and mediation (cases) tag their records with a grid, and neither may import the other.
"""

"""Help and dispatch: the incident lifecycle, matching, and the offer cascade."""

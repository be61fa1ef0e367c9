"""Reports and export (issue 16, contract §11): figures from the facts kept for statistics."""

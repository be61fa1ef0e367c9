"""What an import of a city's reference data did (the gazetteer, the grids): one line of counts. Pure."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0

    def line(self) -> str:
        return f"added={self.added} updated={self.updated} unchanged={self.unchanged} bad={self.bad}"

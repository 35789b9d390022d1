"""HoechstScore desktop app (PySide6): a thin window over :mod:`core`."""

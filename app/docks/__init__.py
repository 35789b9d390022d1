"""The main window's docks: Case, Layers, Results, Analysis."""

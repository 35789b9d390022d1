"""Undoable region edits (QUndoCommand) on the open case's RegionSet; each one autosaves via the session."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from core.regions import Region, RegionSet


class AddRegionCommand(QUndoCommand):
    def __init__(self, regions: RegionSet, region: Region) -> None:
        super().__init__(f"Add {region.display_name}")
        self.regions, self.region = regions, region

    def redo(self) -> None:
        self.regions.add(self.region)

    def undo(self) -> None:
        self.regions.remove(self.region.id)


class RemoveRegionCommand(QUndoCommand):
    def __init__(self, regions: RegionSet, region_id: str) -> None:
        self.regions, self.region = regions, regions[region_id]
        super().__init__(f"Delete {self.region.display_name}")
        self._before = list(regions)

    def redo(self) -> None:
        self.regions.remove(self.region.id)

    def undo(self) -> None:
        self.regions.reset(self._before)


class ReplaceRegionsCommand(QUndoCommand):
    """Any change to the whole set at once (edit a vertex, derive CT/IM, import): before/after lists."""

    def __init__(self, regions: RegionSet, after: list[Region], text: str) -> None:
        super().__init__(text)
        self.regions, self.before, self.after = regions, list(regions), list(after)
        self._width = regions.im_half_width_um

    def redo(self) -> None:
        self.regions.reset(self.after)

    def undo(self) -> None:
        self.regions.reset(self.before)

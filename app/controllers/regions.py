"""RegionsController: drawing, editing, deriving and exchanging the regions of the open case.

Declared state, owned here and nowhere else:

* ``undo``: the QUndoStack of region edits (Edit › Undo/Redo); cleared when another slide opens,
  since its commands name regions of the previous case.

The regions themselves live in the case (``session.regions``, a core RegionSet that autosaves);
every edit goes through an undoable command (:mod:`app.region_commands`) after
``session.check_editable()``, so a signed case is never changed. The view and the Layers dock
follow the RegionSet's ``changed`` signal (:meth:`on_regions_changed`), so views, scores and the
report always show the same regions.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoStack

from app.region_commands import AddRegionCommand, RemoveRegionCommand, ReplaceRegionsCommand
from core.regions import Region, RegionKind


class RegionsController(QObject):
    """Region commands of the window (see the module docstring for the state it owns)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.undo = QUndoStack(self)

    @property
    def _regions(self) -> Any:
        return self.window.session.regions

    def _push(self, action: str, make: Any) -> Any:
        """Check the case may change, push the command ``make()`` builds; errors shown as ``action``."""
        def push() -> Any:
            self.window.session.check_editable()
            command = make()
            self.undo.push(command)
            return command
        return self.window._try(action, push)

    def on_region_drawn(self, geometry: Any) -> None:
        kind = self.window.layers_panel.draw_kind
        author = self.window.session.store.user
        self._push("Adding the region", lambda: AddRegionCommand(
            self._regions, Region(kind=kind, geometry=geometry, name=kind.label, author=author)))

    def on_region_edited(self, region_id: str, geometry: Any) -> None:
        def command() -> ReplaceRegionsCommand:
            after = [r.with_geometry(geometry) if r.id == region_id else r for r in self._regions]
            return ReplaceRegionsCommand(self._regions, after, "Move vertex")
        self._push("Editing the region", command)

    def on_region_selected(self, region_id: object) -> None:
        self.window.layers_panel.set_regions(list(self._regions), region_id)  # type: ignore[arg-type]

    def delete_selected(self) -> None:
        view = self.window.view
        rid = view.regions.selected_id if view.regions else None
        if rid is not None:
            self._push("Deleting the region", lambda: RemoveRegionCommand(self._regions, rid))

    def replace_ct_im_by_derived(self) -> None:
        """Tumour → CT + IM at the settings' half-width, one undoable step; warnings shown."""
        warnings: list[str] = []

        def command() -> ReplaceRegionsCommand:
            before = list(self._regions)
            warnings.extend(self.window.session.replace_ct_im_by_derived())
            cmd = ReplaceRegionsCommand(self._regions, list(self._regions), "Tumour → CT + IM")
            cmd.before = before
            return cmd
        self._push("Deriving CT and IM", command)
        if warnings:
            self.window.notice("CT and IM", "\n".join(warnings))

    def follow_im_width(self) -> None:
        """The IM half-width changed in Settings: CT and IM derived with the old width are derived
        again (one undoable step), and scores from the tumour outline are recomputed. A signed case
        keeps its regions and scores."""
        from core.regions.regionset import DERIVED_WIDTH_KEY

        s = self.window.session
        if s.case is None or s.read_only:
            return
        derived = [r for r in s.regions if r.kind in (RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN)
                   and DERIVED_WIDTH_KEY in r.extra]
        if derived:
            self.replace_ct_im_by_derived()
        else:
            self.window._try("Scoring", s.rescore)

    def on_regions_changed(self) -> None:
        view = self.window.view
        view.set_regions(list(self._regions))
        self.window.layers_panel.set_regions(list(self._regions), view.regions.selected_id if view.regions else None)

    def import_dialog(self) -> None:
        w = self.window
        path = w.ask_path("open", "Import regions", "", "GeoJSON (*.geojson *.json)")
        if path:
            warnings = w._try("Importing regions", w.session.import_geojson, path)
            if warnings:
                w.notice("Import", "\n".join(warnings))

    def export_dialog(self) -> None:
        w = self.window
        path = w.ask_path("save", "Export regions", w.export_name("regions.geojson"), "GeoJSON (*.geojson)")
        if path:
            w._try("Exporting regions", w.session.export_geojson, path)

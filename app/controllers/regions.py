"""RegionsController: drawing, editing, deriving and exchanging the regions of the open case.

Declared state, owned here and nowhere else:

* ``undo``: the QUndoStack of region edits (Edit › Undo/Redo); cleared when another slide opens
  (the window connects the viewer's ``slide_opened`` to ``undo.clear``), since its commands name
  regions of the previous case.

The regions themselves live in the case (``session.regions``, a core RegionSet that autosaves);
every edit goes through an undoable command (:mod:`app.region_commands`) after
``session.check_editable()``, so a signed case is never changed. The view and the Layers dock
follow the RegionSet's ``changed`` signal (:meth:`on_regions_changed`), so views, scores and the
report always show the same regions.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoCommand, QUndoStack
from shapely.geometry.base import BaseGeometry

from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.docks.layers_dock import LayersPanel
from app.region_commands import AddRegionCommand, RemoveRegionCommand, ReplaceRegionsCommand
from app.viewer import SlideView
from core.regions import Region, RegionKind, RegionSet


class RegionsController(QObject):
    """Region commands of the window (see the module docstring for the state it owns)."""

    def __init__(self, session: CaseSession, view: SlideView, layers_panel: LayersPanel, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.view, self.layers_panel, self.prompts = session, view, layers_panel, prompts
        self.undo = QUndoStack(self)

    @property
    def _regions(self) -> RegionSet:
        return self.session.regions

    def _push(self, action: str, make: Callable[[], QUndoCommand]) -> QUndoCommand | None:
        """Check the case may change, push the command ``make()`` builds; errors shown as ``action``."""
        def push() -> QUndoCommand:
            self.session.check_editable()
            command = make()
            self.undo.push(command)
            return command
        return self.prompts.attempt(action, push)

    def on_region_drawn(self, geometry: BaseGeometry) -> None:
        kind = self.layers_panel.draw_kind
        author = self.session.store.user
        self._push("Adding the region", lambda: AddRegionCommand(
            self._regions, Region(kind=kind, geometry=geometry, name=kind.label, author=author)))

    def on_region_edited(self, region_id: str, geometry: BaseGeometry) -> None:
        def command() -> ReplaceRegionsCommand:
            after = [r.with_geometry(geometry) if r.id == region_id else r for r in self._regions]
            return ReplaceRegionsCommand(self._regions, after, "Move vertex")
        self._push("Editing the region", command)

    def on_region_selected(self, region_id: str | None) -> None:
        self.layers_panel.set_regions(list(self._regions), region_id)

    def delete_selected(self) -> None:
        rid = self.view.regions.selected_id if self.view.regions else None
        if rid is not None:
            self._push("Deleting the region", lambda: RemoveRegionCommand(self._regions, rid))

    def replace_ct_im_by_derived(self) -> None:
        """Tumour → CT + IM at the settings' half-width, one undoable step; warnings shown."""
        warnings: list[str] = []

        def command() -> ReplaceRegionsCommand:
            before = list(self._regions)
            warnings.extend(self.session.replace_ct_im_by_derived())
            cmd = ReplaceRegionsCommand(self._regions, list(self._regions), "Tumour → CT + IM")
            cmd.before = before
            return cmd
        self._push("Deriving CT and IM", command)
        if warnings:
            self.prompts.notice("CT and IM", "\n".join(warnings))

    def follow_im_width(self) -> None:
        """The IM half-width changed in Settings: CT and IM derived with the old width are derived
        again (one undoable step), and scores from the tumour outline are recomputed. A signed case
        keeps its regions and scores."""
        from core.regions.regionset import DERIVED_WIDTH_KEY

        s = self.session
        if s.case is None or s.read_only:
            return
        derived = [r for r in s.regions if r.kind in (RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN)
                   and DERIVED_WIDTH_KEY in r.extra]
        if derived:
            self.replace_ct_im_by_derived()
        else:
            self.prompts.attempt("Scoring", s.rescore)

    def on_regions_changed(self) -> None:
        view = self.view
        view.set_regions(list(self._regions))
        self.layers_panel.set_regions(list(self._regions), view.regions.selected_id if view.regions else None)

    def import_dialog(self) -> None:
        path = self.prompts.ask_path("open", "Import regions", "", "GeoJSON (*.geojson *.json)")
        if path:
            warnings = self.prompts.attempt("Importing regions", self.session.import_geojson, path)
            if warnings:
                self.prompts.notice("Import", "\n".join(warnings))

    def export_dialog(self) -> None:
        path = self.prompts.ask_path("save", "Export regions", self.prompts.export_name("regions.geojson"),
                                     "GeoJSON (*.geojson)")
        if path:
            self.prompts.attempt("Exporting regions", self.session.export_geojson, path)

"""HoechstScore core: everything without Qt.

One name per concept, used the same way in code, UI, report and database:

- **slide**: a scanned file opened by :func:`core.slides.open_slide` (not image, WSI or scan).
- **level**, **downsample**, **mpp**: pyramid level, its factor from level 0, and micrometres per
  pixel, as in the OpenSlide API. Coordinates are level-0 pixels unless a name ends in ``_um``.
- **channel role**: what a channel shows (``hoechst``, ``cd20``, ``cd8``, ``cd3``), found by alias.
- **tile**: a fixed-size read fed to the model.
- **model card**: the JSON file (``model.json``) that describes a model beside ``model.safetensors``.
- **cell**: one detected cell with a class and measurements; many of them form the **cell table**
  (a pandas DataFrame, columns in :mod:`core.cells`).
- **region**: a polygon on a slide in µm, drawn or derived (tumour, CT, IM, exclusion, tissue).
- **score**: a named number computed from the cells in a region.
- **case**: one record in the store (a patient's slide, its analyses, regions, scores, reports).
"""

__version__ = "0.1.0"

"""The whole-slide inference engine: from a slide and a model to a table of classified cells.

```python
from core.engine import AnalysisParams, BlockDone, analyse_slide
job = analyse_slide(slide, loaded_model, AnalysisParams(), regions_um=None, cancel=token, checkpoint_dir=None)
result = core.progress.run_to_completion(job, on_progress)
```

How it works, in order (each stage a method of :class:`core.engine.analyse.SlideAnalysis`, named
in brackets):

1. **Geometry.** The Hoechst channel (``slide.channel_index("hoechst")``, or ``params.channel``)
   is read at the model card's pixel size through ``slide.read_region_at_mpp`` (pyramid level +
   resampling). An uncalibrated slide raises UncalibratedError; a slide more than 2× coarser than
   the model raises CoreError. Tiles of ``patch_size`` model px overlap: only the centre
   ``K = patch_size − 2·context_px`` is kept, so every kept pixel saw ``context_px`` of context.
   [the constructor]
2. **Tissue.** [``find_tissue``] Otsu on log intensity of a low-resolution read (``raster_um``), closed, filled and
   cleaned of debris; tiles without tissue never reach the model. With ``regions_um`` (slide µm)
   only tiles within half a tile of a region are read and only cells centred inside are kept, so
   the time scales with the tissue (and region) area.
3. **Pipeline.** [``infer_all``: ``pre_process`` in the reader thread, ``infer_cpu`` /
   ``infer_device`` in the model's, ``post_process`` beside it] Reader threads decode the slide in 512-px chunks aligned to the file's tiles,
   each pixel once, ``prefetch_rows`` rows of tiles ahead of the model; a row's tiles are cut from
   memory. Normalisation (:mod:`core.normalise`, as in training), the model, argmax and winner
   probability, context crop and class raster run batched on the model's device, in batches of
   ``batch_size`` (halved on GPU out-of-memory); ``cancel.check()`` runs before every batch.
   Finished blocks are extracted by ``extract_workers`` threads while the model runs on; the cell
   table is the serial one. ``summary.stage_ms_per_tile`` says where the time went.
4. **Cells, exactly once.** [``extract``] A *block* is one row of tiles. When the rows above and below are
   done, the block's cells are the connected components of each positive class of the argmax
   map, owned by the block holding their centroid (rule in :mod:`core.engine._extract`). Memory
   holds only the class maps of three rows of tiles, never a slide-sized probability map.
5. **Checkpoints.** [``open_checkpoint``, ``resume``, ``save``] With ``checkpoint_dir`` each finished block is saved under
   ``checkpoint_dir/<key>/``; the key covers the slide file, model weights, precision, region and
   result-changing parameters. A rerun skips finished blocks and returns the same cell table.

**Partial results (the block choice).** The job yields :class:`BlockDone`, a :class:`Progress`
subclass with ``cells`` (the new block's cell table, a fresh DataFrame safe to hand to another
thread) and ``block`` (its tile row), after every finished block, top to bottom (blocks restored
from a checkpoint first), so the reports always add up to ``result.cells``. A caller that only
wants progress treats it as any Progress; the app checks ``isinstance(p, BlockDone)`` and appends
``p.cells``. No callback runs on the worker thread, and the parameters stay plain frozen data.

Result [``result``]: :class:`AnalysisResult` (cell table, class/density/tissue rasters at
``raster_mpp``, tissue area, and an :class:`core.engine.summary.AnalysisSummary` with counts,
timing, device, precision, model identity and the model card's class table, which names the
cells' class indices from then on: store, GeoJSON, scores, viewer).
"""

from typing import TYPE_CHECKING

from core.engine.params import AnalysisParams, AnalysisResult, BlockDone

if TYPE_CHECKING:
    from core.engine.analyse import analyse_slide


def __getattr__(name: str) -> object:
    # analyse_slide pulls in torch; load it on first use so parameter-only imports stay light.
    if name == "analyse_slide":
        from core.engine.analyse import analyse_slide

        return analyse_slide
    raise AttributeError(f"module 'core.engine' has no attribute {name!r}")

__all__ = ["AnalysisParams", "AnalysisResult", "BlockDone", "analyse_slide"]

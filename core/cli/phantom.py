"""``python -m core phantom``: write a synthetic Hoechst + mIF slide with its truth."""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

from core.cli.args import (
    float_range,
    int_range,
    non_negative_float,
    non_negative_int,
    output_dir,
    output_file,
    positive_float,
    positive_int,
)
from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion


def register(subparsers: argparse._SubParsersAction) -> None:
    d = PhantomParams()
    p = subparsers.add_parser(
        "phantom",
        help="write a synthetic Hoechst + mIF slide with known truth",
        description="Write a synthetic (phantom) slide: mif.ome.tif, hoechst.ome.tif, cells.csv, "
        "tumour.geojson, tissue.geojson and phantom.json. Same seed and options, same bytes.",
    )
    p.add_argument("--size", type=positive_int, default=d.size, help=f"side in pixels (default {d.size})")
    p.add_argument("--seed", type=non_negative_int, default=d.seed, help="random seed (default 0)")
    p.add_argument("--out", type=output_dir, required=True, help="output directory (created)")
    p.add_argument("--preview", type=output_file, default=None, help="also write a preview PNG here")
    p.add_argument("--mpp", type=positive_float, default=d.mpp, help=f"µm per pixel (default {d.mpp})")
    p.add_argument("--infiltration-ct", type=non_negative_float, default=d.infiltration_ct,
                   help=f"tumour-centre immune infiltration 0 (cold) to 1 (hot) (default {d.infiltration_ct})")
    p.add_argument("--infiltration-im", type=non_negative_float, default=d.infiltration_im,
                   help=f"invasive-margin immune infiltration 0 to 1 (default {d.infiltration_im})")
    p.add_argument("--im-half-width", type=positive_float, default=None,
                   help="invasive-margin half-width in µm (default 500, less on small slides)")
    p.add_argument("--balanced-subtypes", action="store_true",
                   help="equal numbers of the four lymphocyte types (for training), not the paper's mix")
    p.add_argument("--realism", choices=("clean", "real"), default=d.realism,
                   help="'real': the difficulties of real exports (nuclei 4-8 background SDs above an uneven "
                   "background, out-of-focus patches, touching lymphocyte clusters, marker positives dimmer "
                   "than the paper's thresholds and varying across slides, debris, a rare marker) "
                   "(default clean)")
    p.add_argument("--nuclear-contrast", type=positive_float, default=None, metavar="SDS",
                   help="with --realism real: lymphocyte nucleus contrast in background SDs "
                   "(default: drawn per slide, 4.5-7)")
    p.add_argument("--qupath-export", type=output_dir, default=None, metavar="DIR",
                   help="also write it as QuPath exports it: TileExporter tiles (5-channel ImageJ TIFF + "
                   "-labelled.png) and NAME-detections.geojson (cell detections with classes and means)")
    p.add_argument("--export-downsample", type=float_range(1.0, 64.0), nargs="+", default=[1.0], metavar="D",
                   help="downsample(s) of the exported tiles, e.g. 1 4.405 (4.405 gives ~1 µm/px); with "
                   "several, one subfolder per downsample (d1, d4.405) (default 1)")
    p.add_argument("--tile-px", type=int_range(16, 8192), default=512, help="exported tile side at its downsample (default 512)")
    p.add_argument("--max-tiles", type=positive_int, default=None,
                   help="export only this many tiles per downsample, those with the most lymphocytes")
    p.add_argument("--export-name", default=None,
                   help="image name at the start of tile names (default: the --out folder's name)")
    p.add_argument("--compression", choices=("zlib", "zstd", "none"), default=d.compression)
    p.add_argument("--threads", type=positive_int, default=d.threads, help=f"worker threads (default {d.threads})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = PhantomParams(
        size=args.size, seed=args.seed, mpp=args.mpp, infiltration_ct=args.infiltration_ct,
        infiltration_im=args.infiltration_im, im_half_width_um=args.im_half_width,
        compression=args.compression, threads=args.threads,
        subtype_mix=(0.25, 0.25, 0.25, 0.25) if args.balanced_subtypes else None,
        realism=args.realism, nuclear_contrast=args.nuclear_contrast,
    )
    job = generate_phantom(params, args.out)
    try:
        from tqdm import tqdm

        bar = tqdm(total=1, unit="step", file=sys.stderr, desc="phantom")

        def show(p) -> None:
            bar.total = p.total
            bar.n = p.done
            bar.set_postfix_str(p.message, refresh=False)
            bar.refresh()

        paths = run_to_completion(job, show)
        bar.close()
    except ImportError:  # tqdm is a dependency, but never fail for a progress bar
        paths = run_to_completion(job)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"SYNTHETIC phantom written to {args.out}: {params.size}x{params.size} px in "
          f"{paths.seconds:.1f} s ({paths.megapixels / paths.seconds:.2f} Mpx/s), peak RSS {rss:.0f} MB")
    if args.preview is not None:
        from core.phantom.preview import write_preview

        write_preview(args.out, args.preview)
        print(f"preview: {args.preview}")
    if args.qupath_export is not None:
        _export(args)
    return 0


def _export(args: argparse.Namespace) -> None:
    """TileExporter folders (one per downsample) and the detections GeoJSON of the new phantom."""
    from core.phantom.export_qupath import export_tiles, write_detections

    root: Path = args.qupath_export
    name = args.export_name or Path(args.out).resolve().name
    several = len(args.export_downsample) > 1
    for d in args.export_downsample:
        folder = root / f"d{d:g}" if several else root
        tiles = run_to_completion(export_tiles(args.out, folder, downsample=d, tile_px=args.tile_px, name=name,
                                               max_tiles=args.max_tiles))
        print(f"QuPath TileExporter tiles (downsample {d:g}, {args.mpp * d:.3f} µm/px): {len(tiles)} in {folder}")
    det = write_detections(args.out, root / f"{name}-detections.geojson")
    print(f"QuPath detections: {det}")

"""Compose ``docs/saliency-example.png`` from two ``python -m core saliency`` runs at one point.

The figure shows, for one correctly called lymphocyte of the demo slide: the Hoechst patch the
model sees, its prediction, HiPe on the whole patch (the paper's figure: per-pixel drop of the
class probability) and HiPe on the cell alone (why is *this* cell that class?), each with the
numbers from the runs' ``saliency.json``.

Reproduce (demo slide from ``python -m core demo-case``; ~4 min per run on 1 CPU thread)::

    S=~/.local/share/HoechstScore/demo/hoechst.ome.tif
    .venv/bin/python -m core saliency $S --x 693.2 --y 1526.2 --out build/saliency-fig/patch
    .venv/bin/python -m core saliency $S --x 693.2 --y 1526.2 --cell --out build/saliency-fig/cell
    .venv/bin/python benchmarks/saliency_figure.py build/saliency-fig/patch build/saliency-fig/cell
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCALE = 2          # each 256 px panel drawn at 512 px
CAPTION_PX = 74    # room under each panel for two lines of caption
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:  # no DejaVu: Pillow's own font, still legible
        return ImageFont.load_default()


def _panel(png: Path) -> Image.Image:
    img = Image.open(png).convert("RGB")
    return img.resize((img.width * SCALE, img.height * SCALE), Image.Resampling.NEAREST)


def compose(patch_dir: Path, cell_dir: Path) -> Image.Image:
    """The four panels side by side with their captions."""
    patch, cell = (json.loads((d / "saliency.json").read_text(encoding="utf-8")) for d in (patch_dir, cell_dir))
    pt, ct = patch["targets"][0], cell["targets"][0]
    name = pt["class"]
    um = patch["patch_size"] * patch["patch_mpp"]
    panels = [
        (_panel(patch_dir / "hoechst.png"), f"Hoechst patch, {um:.0f} µm", f"model {patch['model']['name']}"),
        (_panel(cell_dir / "prediction.png"), "Prediction (cell outlined)", f"called {cell['cell']['class']}, "
         f"p = {cell['cell']['mean_probability']:.2f}"),
        (_panel(patch_dir / f"saliency_{name}.png"), f"HiPe, whole patch, {name}",
         f"{pt['n_masks']:,} passes; {pt['inside_fraction']:.0%} of mass on {name} pixels"),
        (_panel(cell_dir / f"saliency_{ct['class']}.png"), f"HiPe, this cell only, {ct['class']}",
         f"{ct['n_masks']:,} passes; top pixels {ct['top_pixels_inside']:.0%} inside, "
         f"mass {ct['inside_fraction']:.0%}" if ct.get("top_pixels_inside") is not None else
         f"{ct['n_masks']:,} passes; mass {ct['inside_fraction']:.0%} inside"),
    ]
    w, h = panels[0][0].size
    gap = 12
    out = Image.new("RGB", (len(panels) * (w + gap) + gap, h + CAPTION_PX + gap), (32, 33, 36))
    draw = ImageDraw.Draw(out)
    big, small = _font(20), _font(16)
    for i, (img, title, sub) in enumerate(panels):
        x = gap + i * (w + gap)
        out.paste(img, (x, gap))
        draw.text((x, gap + h + 10), title, fill=(240, 240, 240), font=big)
        draw.text((x, gap + h + 40), sub, fill=(190, 190, 190), font=small)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("patch_dir", type=Path, help="output folder of the whole-patch run")
    ap.add_argument("cell_dir", type=Path, help="output folder of the --cell run at the same point")
    ap.add_argument("--out", type=Path, default=Path("docs/saliency-example.png"))
    args = ap.parse_args(argv)
    img = compose(args.patch_dir, args.cell_dir)
    img.save(args.out, optimize=True)
    print(f"Wrote {args.out} ({img.width}x{img.height}); mean {np.asarray(img).mean():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

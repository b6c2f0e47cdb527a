"""Reduce partial best fits into the final GeoTIFF, CSV and PNG."""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search.io import Dem, write_geotiff
from lasair_parallel.apps.scarp_search.matching import BestFit
from lasair_parallel.apps.scarp_search.plot import hillshade_png
from lasair_parallel.tasks.outputs import atomic_write

BANDS = ["amplitude_m", "kt_m2", "strike_deg", "snr"]
CSV_COLUMNS = ["row", "col", "x", "y", "strike_deg", "kt_m2", "amplitude_m", "snr"]


def load_partial(path: str | Path) -> BestFit:
    """Read one task's partial .npz."""
    with np.load(path) as f:
        return BestFit(snr=f["snr"], amp=f["amp"], kt_idx=f["kt_idx"], ang_idx=f["ang_idx"])


def save_partial(path: str | Path, best: BestFit) -> None:
    """Write a partial best fit atomically (np.savez into the temporary file)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **best.to_npz())


def reduce_partials(paths: list[str | Path]) -> BestFit:
    """Merge partials; the tie-break in BestFit.merge makes the order irrelevant."""
    best: BestFit | None = None
    for p in paths:
        part = load_partial(p)
        if best is None:
            best = part
        else:
            best.merge(part)
    if best is None:
        raise ValueError("no partial results to gather")
    return best


def to_maps(best: BestFit, kts: np.ndarray, angles: np.ndarray) -> list[np.ndarray]:
    """Amplitude, kt, strike, SNR maps (NaN where no window fitted)."""
    ok = best.ang_idx >= 0
    nan = np.float32(np.nan)
    amp = np.where(ok, best.amp, nan)
    kt = np.where(ok, kts[np.maximum(best.kt_idx, 0)], nan)
    strike = np.where(ok, angles[np.maximum(best.ang_idx, 0)], nan)
    snr = np.where(ok, best.snr, nan)
    return [amp, kt, strike, snr]


def write_outputs(out_dir: Path, best: BestFit, dem: Dem, kts: np.ndarray,
                  angles: np.ndarray, snr_min: float, title: str) -> dict[str, Path]:
    """Write best_fit.tif, detections.csv (SNR >= snr_min, strongest first) and hillshade.png."""
    maps = to_maps(best, kts, angles)
    paths = {"tif": out_dir / "best_fit.tif", "csv": out_dir / "detections.csv",
             "png": out_dir / "detections.png"}
    write_geotiff(paths["tif"], maps, BANDS, dem.transform, dem.crs)
    amp, kt, strike, snr = maps
    sel = np.isfinite(snr) & (snr >= snr_min)
    rows, cols = np.nonzero(sel)
    order = np.lexsort((cols, rows, -snr[rows, cols]))
    rows, cols = rows[order], cols[order]
    x, y = dem.xy(rows, cols)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)

    def cell(v: float, fmt: str) -> str:
        return format(v, fmt) if np.isfinite(v) else ""  # empty field = NULL for the loader

    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        w.writerow([r, c, cell(x[i], ".3f"), cell(y[i], ".3f"), cell(strike[r, c], ".1f"),
                    cell(kt[r, c], ".4g"), cell(amp[r, c], ".5g"), cell(snr[r, c], ".6g")])
    with atomic_write(paths["csv"]) as f:
        f.write(buf.getvalue())
    hillshade_png(paths["png"], dem.z, dem.dx_e, dem.dy_n, rows, cols, snr[rows, cols], title)
    return paths

"""Reduce partial best fits into the final GeoTIFF, detections CSV (segments) and PNG."""

from __future__ import annotations

import csv
import io as _io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lasair_parallel.apps.scarp_search import detect
from lasair_parallel.apps.scarp_search.io import Dem, write_geotiff
from lasair_parallel.apps.scarp_search.matching import BestFit
from lasair_parallel.apps.scarp_search.plot import detections_png
from lasair_parallel.apps.scarp_search.traces import Segment, segments
from lasair_parallel.tasks.outputs import atomic_write

BANDS = ["amplitude_m", "kt_m2", "strike_deg", "snr", "detected"]
# detections.csv: one row per segment, strongest first (schema/scarp_segments.sql).
CSV_COLUMNS = ["segment", "x0", "y0", "x1", "y1", "length_m", "strike_deg", "kt_m2",
               "amplitude_m", "snr", "snr_max", "n_pixels"]


@dataclass(frozen=True)
class Detection:
    """Everything the detection step decided, for the outputs and the run summary."""

    segments: list[Segment]
    flagged: np.ndarray  # pixels on a kept segment
    candidates: np.ndarray  # pixels over threshold and within the limits (before the ridge)
    thresholds: np.ndarray  # SNR threshold per (strike, kt)
    n_eff: np.ndarray
    m_eff: float
    alpha: float

    def summary(self) -> str:
        """One line: what was found, and the null model's threshold that found it."""
        fin = np.isfinite(self.thresholds)
        thr = self.thresholds[fin]
        ne = self.n_eff[np.isfinite(self.n_eff)]
        frac = self.flagged.mean() if self.flagged.size else 0.0
        return (f"{len(self.segments)} segments, {int(self.flagged.sum())} pixels flagged "
                f"({100 * frac:.2f} %) at false-alarm {self.alpha:g} per pixel: SNR threshold "
                f"{thr.min() if thr.size else float('inf'):.1f}-"
                f"{np.median(thr) if thr.size else float('inf'):.1f} (min-median over templates;"
                f" n_eff {ne.min() if ne.size else 0:.0f}-{ne.max() if ne.size else 0:.0f},"
                f" {self.m_eff:.0f} independent templates)")


def load_partial(path: str | Path) -> tuple[BestFit, np.ndarray]:
    """Read one task's partial .npz: the best fit and its rows of the n_eff / n table."""
    with np.load(path) as f:
        best = BestFit(score=f["score"], amp=f["amp"], kt_idx=f["kt_idx"],
                       ang_idx=f["ang_idx"])
        return best, f["snr_ratio"]


def save_partial(path: str | Path, best: BestFit, snr_ratio: np.ndarray) -> None:
    """Write a partial best fit and its strikes' n_eff / n rows (NaN elsewhere), atomically."""
    with atomic_write(path, "wb") as f:
        np.savez(f, snr_ratio=snr_ratio, **best.to_npz())


def reduce_partials(paths: list[str | Path]) -> tuple[BestFit, np.ndarray]:
    """Merge partials (best fit, n_eff / n table); BestFit.merge's tie-break makes the order
    irrelevant."""
    best: BestFit | None = None
    ratio: np.ndarray | None = None
    for p in paths:
        part, r = load_partial(p)
        if best is None:
            best, ratio = part, r.copy()
        else:
            best.merge(part)
            ratio = np.fmax(ratio, r)  # each task fills its own strikes' rows
    if best is None:
        raise ValueError("no partial results to gather")
    return best, ratio


def to_maps(best: BestFit, kts: np.ndarray, angles: np.ndarray,
            snr_ratio: np.ndarray) -> list[np.ndarray]:
    """Amplitude, kt, strike, SNR maps (NaN where no window fitted); SNR = score n_eff / n."""
    ok = best.ang_idx >= 0
    nan = np.float32(np.nan)
    ia, ik = np.maximum(best.ang_idx, 0), np.maximum(best.kt_idx, 0)
    amp = np.where(ok, best.amp, nan)
    kt = np.where(ok, kts[ik], nan).astype(np.float32)
    strike = np.where(ok, angles[ia], nan).astype(np.float32)
    snr = np.where(ok, best.score * snr_ratio[ia, ik], nan).astype(np.float32)
    return [amp, kt, strike, snr]


def detect_segments(best: BestFit, dem: Dem, kts: np.ndarray, angles: np.ndarray,
                    snr_ratio: np.ndarray, n_pix: np.ndarray, m_eff: float, alpha: float,
                    limits: detect.Limits, min_length: float) -> Detection:
    """Threshold, limits, ridge and linking (detect.py, traces.py) on a reduced best fit."""
    amp, kt, strike, snr = to_maps(best, kts, angles, snr_ratio)
    n_eff = snr_ratio * n_pix[None, :]
    thr = detect.snr_thresholds(n_eff, alpha, m_eff)
    flat = detect.flat_pixels(dem.z, dem.dx_e, dem.dy_n)
    cand = detect.candidates(snr, amp, kt, best.ang_idx, best.kt_idx, thr, flat, limits)
    rid = detect.ridge(snr, strike, cand, dem.dx_e, dem.dy_n)
    segs = segments(rid, strike, kt, amp, snr, dem.transform, min_length)
    flagged = np.zeros(snr.shape, bool)
    for s in segs:
        flagged[s.rows, s.cols] = True
    return Detection(segs, flagged, cand, thr, n_eff, m_eff, alpha)


def write_outputs(out_dir: Path, best: BestFit, dem: Dem, kts: np.ndarray, angles: np.ndarray,
                  snr_ratio: np.ndarray, det: Detection, title: str) -> dict[str, Path]:
    """Write best_fit.tif (fit maps + detected band), detections.csv and detections.png."""
    maps = to_maps(best, kts, angles, snr_ratio)
    paths = {"tif": out_dir / "best_fit.tif", "csv": out_dir / "detections.csv",
             "png": out_dir / "detections.png"}
    detected = np.where(np.isfinite(maps[3]), det.flagged.astype(np.float32), np.nan)
    write_geotiff(paths["tif"], maps + [detected], BANDS, dem.transform, dem.crs)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for i, s in enumerate(det.segments, start=1):
        w.writerow([i, f"{s.x0:.3f}", f"{s.y0:.3f}", f"{s.x1:.3f}", f"{s.y1:.3f}",
                    f"{s.length_m:.1f}", f"{s.strike_deg:.1f}", f"{s.kt_m2:.4g}",
                    f"{s.amplitude_m:.4g}", f"{s.snr:.4g}", f"{s.snr_max:.4g}", s.rows.size])
    with atomic_write(paths["csv"]) as f:
        f.write(buf.getvalue())
    detections_png(paths["png"], dem, det.segments, title, det.summary())
    return paths

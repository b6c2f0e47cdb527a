"""Best-fit scarp parameters per pixel: FFT correlation of curvature with every template.

Per strike the directional curvature K and K^2 are transformed once (real FFTs, float32); per
(strike, kt) the template and its window are transformed and two inverse FFTs give sum W K and
sum K^2 over the window.  FFT sizes need no padding: circular wrap-around only reaches windows
that leave the grid, and those are masked.  Each pixel keeps the template with the highest SNR;
equal SNRs go to the first template in grid order (strike index, then kt index), which is what
makes any split of the grid reduce to the single-process result exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from apps.scarp_search.curvature import STENCIL_RADIUS, directional, hessian
from apps.scarp_search.templates import (
    DEFAULT_ANGLES,
    angle_grid,
    default_kts,
    half_width,
    make_template,
    spectra,
)

# SNR's misfit is sum K^2 - A sum W K, a difference of float32 sums; below this fraction of
# sum K^2 it is rounding, so it is clamped there (caps SNR near 1e6 per unit rho^2 on a
# noise-free grid instead of dividing by rounding noise).
MISFIT_FLOOR = 1e-6


@dataclass
class BestFit:
    """Per-pixel best template: SNR (-inf where no valid window), amplitude, grid indices."""

    snr: np.ndarray
    amp: np.ndarray
    kt_idx: np.ndarray
    ang_idx: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> BestFit:
        return cls(
            snr=np.full(shape, -np.inf, np.float32),
            amp=np.zeros(shape, np.float32),
            kt_idx=np.full(shape, -1, np.int16),
            ang_idx=np.full(shape, -1, np.int16),
        )

    def merge(self, other: BestFit) -> None:
        """Keep, per pixel, the better of self and other (higher SNR, then earlier template)."""
        take = (other.snr > self.snr) | (
            (other.snr == self.snr) & (other.ang_idx >= 0)
            & ((self.ang_idx < 0) | (other.ang_idx < self.ang_idx)
               | ((other.ang_idx == self.ang_idx) & (other.kt_idx < self.kt_idx)))
        )
        for name in ("snr", "amp", "kt_idx", "ang_idx"):
            getattr(self, name)[take] = getattr(other, name)[take]

    def to_npz(self) -> dict[str, np.ndarray]:
        return {"snr": self.snr, "amp": self.amp, "kt_idx": self.kt_idx, "ang_idx": self.ang_idx}


class Matcher:
    """Template matcher for one DEM; ``run`` searches any subset of the strike grid.

    ``z`` is copied (float64) before use and never modified.  ``dx_e`` and ``dy_n`` are the
    metric steps of a column (east) and a row (north; negative when rows run south).
    """

    def __init__(self, z: np.ndarray, dx_e: float, dy_n: float, d: float,
                 kts: np.ndarray | None = None, angles: np.ndarray | None = None) -> None:
        self.shape = z.shape
        self.dx_e, self.dy_n, self.d = float(dx_e), float(dy_n), float(d)
        self.kts = default_kts() if kts is None else np.asarray(kts, float)
        self.angles = DEFAULT_ANGLES if angles is None else np.asarray(angles, float)
        self.h, bad = hessian(z, self.dx_e, self.dy_n)
        ny, nx = self.shape
        self.fft_shape = (sfft.next_fast_len(ny, real=True), sfft.next_fast_len(nx, real=True))
        # NaN holes inside the grid: windows are masked by counting bad pixels under the window
        # (one more inverse FFT per template, only for DEMs that have holes).
        interior = bad.copy()
        r = STENCIL_RADIUS
        interior[:r, :] = interior[-r:, :] = interior[:, :r] = interior[:, -r:] = False
        self.f_bad = (sfft.rfft2(interior.astype(np.float32), s=self.fft_shape, workers=1)
                      if interior.any() else None)
        self.reach = half_width(float(self.kts.max())) + self.d

    def _valid_box(self, t) -> tuple[int, int, int, int]:
        """Rows r0:r1, cols c0:c1 whose whole window has defined curvature (edge mask)."""
        ny, nx = self.shape
        r = STENCIL_RADIUS
        return (r - t.rmin, ny - r - t.rmax, r - t.cmin, nx - r - t.cmax)

    def run(self, angle_indices: Iterable[int], best: BestFit | None = None) -> BestFit:
        """Search the strikes ``angle_indices`` (indices into ``self.angles``) and all kts."""
        best = BestFit.empty(self.shape) if best is None else best
        s = self.fft_shape
        for ia in angle_indices:
            theta = float(self.angles[ia])
            k = directional(self.h, theta)
            fk = sfft.rfft2(k, s=s, workers=1)
            fk2 = sfft.rfft2(k * k, s=s, workers=1)
            grid = angle_grid(theta, self.reach, self.dx_e, self.dy_n)
            for ik, kt in enumerate(self.kts):
                t = make_template(float(kt), theta, self.d, self.dx_e, self.dy_n, grid)
                r0, r1, c0, c1 = self._valid_box(t)
                if r1 <= r0 or c1 <= c0:
                    continue
                fw, fm = spectra(t, s)
                crop = (slice(r0, r1), slice(c0, c1))
                swk = sfft.irfft2(fk * fw, s=s, workers=1)[crop]
                skk = sfft.irfft2(fk2 * fm, s=s, workers=1)[crop]
                n, sww = np.float32(t.n), np.float32(t.sww)
                amp = swk / sww
                misfit = np.maximum(skk - amp * swk, skk * np.float32(MISFIT_FLOOR)) / n
                snr = amp * amp * sww / np.maximum(misfit, np.finfo(np.float32).tiny)
                if self.f_bad is not None:
                    holes = sfft.irfft2(self.f_bad * fm, s=s, workers=1)[crop] > 0.5
                    snr[holes] = -np.inf
                bs = best.snr[crop]
                upd = snr > bs
                bs[upd] = snr[upd]
                best.amp[crop][upd] = amp[upd]
                best.kt_idx[crop][upd] = ik
                best.ang_idx[crop][upd] = ia
        return best


def match(z: np.ndarray, dx_e: float, dy_n: float, d: float, kts: np.ndarray | None = None,
          angles: np.ndarray | None = None) -> tuple[BestFit, Matcher]:
    """Single-process search of the whole (strike, kt) grid."""
    m = Matcher(z, dx_e, dy_n, d, kts, angles)
    return m.run(range(len(m.angles))), m

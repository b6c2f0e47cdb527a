"""Best-fit scarp parameters per pixel: separable matching in a strike-aligned frame.

Per strike theta the directional curvature K (curvature.py, computed on the DEM's own grid) is
sampled by nearest neighbour onto a lattice aligned with the strike: u across strike, v along it,
spacing h = the smaller pixel step, origin on pixel (0, 0).  Nearest-neighbour sampling copies
pixel values (no interpolation smoothing), so the noise variance per sample -- and with it the
SNR -- does not depend on the strike.  In that frame every template is separable: a 1-D profile
W across strike times a box |v| < d along strike, so

* the along-strike box sums of K, K^2 and of the undefined-pixel indicator are cumulative-sum
  differences, computed once per strike and shared by every kt;
* per kt, sum W K is one 1-D correlation across strike (real FFTs of the box-summed rows are taken
  once per strike; each kt multiplies by the cached template spectrum and does one inverse FFT),
  and sum K^2 over the window is a cumulative-sum difference across strike.

Box sums are evaluated on every ``row_step``-th lattice row (default d / 12.5 / h rows, i.e. a
window centred within d / 25 of the pixel along strike; ``row_step=1`` evaluates every row); each
pixel takes the result of the nearest lattice point (within h / 2 across strike).  Each pixel keeps
the template with the highest SNR; equal SNRs go to the first template in grid order (strike index,
then kt index), which is what makes any split of the grid reduce to the single-process result
exactly.

Numerics (issue 12): everything that feeds rho^2 is float64 (in float32, FFT rounding in sum W K
exceeded sum K^2 in flat windows: rho^2 > 1 and SNRs of 1e20-1e29); rho^2 is capped below 1 so
the SNR is always finite, and a window whose curvature variance is at the rounding level of the
DEM's elevations gets no fit at all.  The SNR is n_eff rho^2 / (1 - rho^2) with the effective
number of independent samples of nullmodel.py instead of the pixel count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from lasair_parallel.apps.scarp_search.curvature import directional, hessian, noise_floor
from lasair_parallel.apps.scarp_search.nullmodel import (
    directional_autocov,
    effective_n,
    hessian_autocov,
    lag_profile,
)
from lasair_parallel.apps.scarp_search.templates import (
    DEFAULT_ANGLES,
    default_kts,
    half_width,
    lattice_profile,
)
from scipy import fft as sfft

# rho^2 is capped here: 1 - rho^2 below 1e-6 is beyond what nearest-neighbour sampling of a real
# grid can resolve, and the cap keeps SNR <= n_eff * 1e6 (finite) on noise-free synthetic DEMs.
RHO2_MAX = 1.0 - 1e-6
# n_eff is evaluated at anchor strikes this far apart (deg); see Matcher.neff_for.
NEFF_STRIKE_STEP = 15.0
# A window whose mean K^2 is below this many times the curvature variance produced by float32
# rounding of the elevations (curvature.noise_floor) is flat: it gets no fit.
FLAT_FACTOR = 10.0
# Default along-strike registration: lattice rows every d / ROW_STEP_DIV / h.
ROW_STEP_DIV = 12.5


def window_sizes(kts: np.ndarray, d: float, step: float) -> tuple[list[int], int]:
    """Half-widths in lattice steps: across strike per kt (|t| h < c) and along (|j| h < d)."""
    mu = [int(np.ceil(half_width(float(kt)) / step)) - 1 for kt in kts]
    return mu, int(np.ceil(d / step)) - 1


def window_pixels(kts: np.ndarray, d: float, step: float) -> np.ndarray:
    """Lattice points in each kt's window, n = (2 mv + 1)(2 mu + 1)."""
    mu, mv = window_sizes(kts, d, step)
    return np.array([(2 * mv + 1) * (2 * m + 1) for m in mu], float)


@dataclass
class BestFit:
    """Per-pixel best template: fit score (-inf where no valid window), amplitude, indices.

    The score n rho^2 / (1 - rho^2) (n = window pixels; scarplet's SNR) picks the template: it
    is what the accuracy tests were tuned on, and ranking by the n_eff-corrected SNR instead
    would favour the kts whose windows hold more independent samples (kt 1-2 grid steps high
    under noise).  The reported SNR of the chosen template is score * n_eff / n
    (``Matcher.snr_ratio``).
    """

    score: np.ndarray
    amp: np.ndarray
    kt_idx: np.ndarray
    ang_idx: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> BestFit:
        return cls(
            score=np.full(shape, -np.inf, np.float32),
            amp=np.zeros(shape, np.float32),
            kt_idx=np.full(shape, -1, np.int16),
            ang_idx=np.full(shape, -1, np.int16),
        )

    def merge(self, other: BestFit) -> None:
        """Keep, per pixel, the better of self and other (higher SNR, then earlier template)."""
        take = (other.score > self.score) | (
            (other.score == self.score) & (other.ang_idx >= 0)
            & ((self.ang_idx < 0) | (other.ang_idx < self.ang_idx)
               | ((other.ang_idx == self.ang_idx) & (other.kt_idx < self.kt_idx)))
        )
        for name in ("score", "amp", "kt_idx", "ang_idx"):
            getattr(self, name)[take] = getattr(other, name)[take]

    def to_npz(self) -> dict[str, np.ndarray]:
        return {"score": self.score, "amp": self.amp, "kt_idx": self.kt_idx,
                "ang_idx": self.ang_idx}


class Matcher:
    """Template matcher for one DEM; ``run`` searches any subset of the strike grid.

    ``z`` is copied (float64) before use and never modified.  ``dx_e`` and ``dy_n`` are the
    metric steps of a column (east) and a row (north; negative when rows run south).
    """

    def __init__(self, z: np.ndarray, dx_e: float, dy_n: float, d: float,
                 kts: np.ndarray | None = None, angles: np.ndarray | None = None,
                 row_step: int | None = None) -> None:
        self.shape = z.shape
        self.dx_e, self.dy_n, self.d = float(dx_e), float(dy_n), float(d)
        self.kts = default_kts() if kts is None else np.asarray(kts, float)
        self.angles = DEFAULT_ANGLES if angles is None else np.asarray(angles, float)
        self.h, bad = hessian(z, self.dx_e, self.dy_n)
        self.bad = bad
        self.step = min(abs(self.dx_e), abs(self.dy_n))
        self.row_step = (max(1, int(self.d / ROW_STEP_DIV / self.step)) if row_step is None
                         else int(row_step))
        # Window half-widths: along strike (lattice rows |j' - j| h < d) and across strike per
        # kt (lattice columns |t| h < c).
        self.mu, self.mv = window_sizes(self.kts, self.d, self.step)
        self.profiles = [lattice_profile(float(kt), self.step, m)
                         for kt, m in zip(self.kts, self.mu, strict=True)]
        ny, nx = self.shape
        r, c = np.mgrid[0:ny, 0:nx]
        self._pe = (c * self.dx_e).astype(np.float64).ravel()
        self._pn = (r * self.dy_n).astype(np.float64).ravel()
        self._spectra: dict[int, list[np.ndarray]] = {}
        self.k_floor = FLAT_FACTOR * noise_floor(z, self.dx_e, self.dy_n)
        # Null model: the curvature autocovariance measured on this DEM, to the largest lag any
        # template window spans (across 2 mu, along 2 mv lattice steps, in any direction).
        self.mu_max = max(self.mu)
        lag = int(np.ceil((2 * self.mu_max + 2 * self.mv) * self.step
                          / min(abs(self.dx_e), abs(self.dy_n))))
        self._cov = hessian_autocov(self.h, bad, lag, self.dx_e, self.dy_n)
        self.n_eff = np.full((len(self.angles), len(self.kts)), np.nan)
        self._neff_min: np.ndarray | None = None

    @property
    def n_pix(self) -> np.ndarray:
        """Pixels (lattice points) in each kt's window."""
        return window_pixels(self.kts, self.d, self.step)

    def snr_ratio(self) -> np.ndarray:
        """n_eff / n per (strike, kt): the fit score times this is the reported SNR."""
        return self.n_eff / self.n_pix[None, :]

    def neff_for(self, ia: int) -> np.ndarray:
        """Effective number of independent samples of every kt's window at strike index ia.

        The null model is isotropic (nullmodel.hessian_autocov), so n_eff depends on the strike
        only through the stencil's residual anisotropy and the nearest-neighbour lattice (on
        white noise up to a factor 2 at +-30 deg for broad kts, whose sums of blue curvature
        noise are a small difference).  It is computed at the anchor strikes -90, -75, ..., 75
        (0..45 with square pixels: the same minimum to 0.2 % on carrizo.tif) and every strike
        takes the smallest per kt: conservative, the same for every strike and in every task
        (so split grids still reduce exactly), and 4-12 evaluations instead of one per strike
        (which cost more than the search at 1 m pixels).
        """
        if self._neff_min is None:
            per_anchor = []
            anchors = np.arange(-90.0, 90.0, NEFF_STRIKE_STEP)
            if np.isclose(abs(self.dx_e), abs(self.dy_n)):
                # Square pixels: the isotropic null looks the same at theta, -theta and
                # 90 - theta (mirror, swap of axes), so 0..45 stand for all the anchors.
                anchors = anchors[(anchors >= 0) & (anchors <= 45)]
            for anchor in anchors:
                r = directional_autocov(self._cov, float(anchor))
                r0 = float(r[(r.shape[0] - 1) // 2, (r.shape[1] - 1) // 2])
                g = lag_profile(r, float(anchor), self.dx_e, self.dy_n, self.step, self.mu_max,
                                self.mv)
                per_anchor.append([effective_n(g, r0, w, self.mv)
                                   for w in self.profiles])
            self._neff_min = np.min(np.array(per_anchor), axis=0)
        self.n_eff[ia] = self._neff_min
        return self.n_eff[ia]

    def _template_spectra(self, nfft: int) -> list[np.ndarray]:
        """Conjugate rfft of each profile, wrapped about lattice offset 0 (correlation)."""
        if nfft not in self._spectra:
            out = []
            for w, m in zip(self.profiles, self.mu, strict=True):
                k = np.zeros(nfft)
                k[np.arange(-m, m + 1) % nfft] = w
                out.append(np.conj(sfft.rfft(k, workers=1)))
            self._spectra[nfft] = out
        return self._spectra[nfft]

    def _angle(self, theta: float) -> tuple | None:
        """Best (score, swk, kt index) per lattice point for one strike, and the pixel mapping."""
        h = self.step
        t = np.radians(theta)
        cs, sn = np.cos(t), np.sin(t)
        ny, nx = self.shape
        corners_e = np.array([0, nx - 1, 0, nx - 1]) * self.dx_e
        corners_n = np.array([0, 0, ny - 1, ny - 1]) * self.dy_n
        cu = corners_e * cs - corners_n * sn
        cv = corners_e * sn + corners_n * cs
        i0, i1 = int(np.floor(cu.min() / h)), int(np.ceil(cu.max() / h))
        j0, j1 = int(np.floor(cv.min() / h)), int(np.ceil(cv.max() / h))
        nu, nv = i1 - i0 + 1, j1 - j0 + 1
        mv, rs = self.mv, self.row_step
        # Computed rows: global lattice rows j = rs * k whose along-strike window is inside.
        k0 = -((-(j0 + mv)) // rs)
        k1 = (j1 - mv) // rs
        if k1 < k0:
            return None
        rows = np.arange(k0, k1 + 1) * rs - j0  # local lattice row indices
        # Nearest pixel of each lattice point; points off the grid are undefined.
        u = (np.arange(i0, i1 + 1) * h)[None, :]
        v = (np.arange(j0, j1 + 1) * h)[:, None]
        col = np.rint((u * cs + v * sn) / self.dx_e)
        row = np.rint((v * cs - u * sn) / self.dy_n)
        inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        flat = np.where(inside, row * nx + col, 0).astype(np.intp)
        k = directional(self.h, theta).ravel()
        klat = k[flat]
        badlat = self.bad.ravel()[flat] | ~inside
        klat[badlat] = 0.0
        # Along-strike box sums at the computed rows (float64 cumulative sums).
        lo, hi = rows - mv, rows + mv + 1

        def vbox(a: np.ndarray) -> np.ndarray:
            s = np.zeros((nv + 1, nu))
            np.cumsum(a, axis=0, out=s[1:])
            return s[hi] - s[lo]

        bk = vbox(klat)
        bkk = vbox(klat * klat)
        bbad = vbox(badlat.astype(np.float64))
        # Across-strike cumulative sums (leading zero column) for the window sums of K^2, bad.
        nr = len(rows)
        skk = np.zeros((nr, nu + 1))
        np.cumsum(bkk, axis=1, out=skk[:, 1:])
        sbad = np.zeros((nr, nu + 1))
        np.cumsum(bbad, axis=1, out=sbad[:, 1:])
        nfft = sfft.next_fast_len(nu, real=True)
        fb = sfft.rfft(bk, n=nfft, axis=1, workers=1)
        spectra = self._template_spectra(nfft)
        best_snr = np.full((nr, nu), -np.inf)
        best_swk = np.zeros((nr, nu))
        best_kt = np.full((nr, nu), -1, np.int16)
        nvw = 2 * mv + 1
        for ik, (m, w, spec) in enumerate(zip(self.mu, self.profiles, spectra, strict=True)):
            if 2 * m + 1 > nu:
                continue
            sl = slice(m, nu - m)
            swk = sfft.irfft(fb * spec, n=nfft, axis=1, workers=1)[:, sl]
            wkk = skk[:, 2 * m + 1:] - skk[:, :nu - 2 * m]
            # Invalid: an undefined pixel in the window, or curvature at the rounding level.
            bad_w = (sbad[:, 2 * m + 1:] - sbad[:, :nu - 2 * m]) > 0.5
            bad_w |= wkk <= nvw * (2 * m + 1) * self.k_floor
            # rho^2 = (sum W K)^2 / (sum W^2 sum K^2); NaN marks invalid windows (never best).
            np.copyto(wkk, np.nan, where=bad_w)
            wkk *= nvw * float(np.dot(w, w))
            q = swk * swk
            q /= wkk
            np.minimum(q, RHO2_MAX, out=q)
            # score = n rho^2 / (1 - rho^2)
            den = 1.0 - q
            np.divide(q, den, out=q)
            q *= nvw * (2 * m + 1)
            bs = best_snr[:, sl]
            upd = q > bs
            np.copyto(bs, q, where=upd)
            np.copyto(best_swk[:, sl], swk, where=upd)
            np.copyto(best_kt[:, sl], np.int16(ik), where=upd)
        return best_snr, best_swk, best_kt, i0, k0, rs, j0

    def run(self, angle_indices: Iterable[int], best: BestFit | None = None) -> BestFit:
        """Search the strikes ``angle_indices`` (indices into ``self.angles``) and all kts."""
        best = BestFit.empty(self.shape) if best is None else best
        h = self.step
        sww = np.array([(2 * self.mv + 1) * float(np.dot(w, w)) for w in self.profiles])
        bsnr, bamp = best.score.ravel(), best.amp.ravel()
        bkt, bang = best.kt_idx.ravel(), best.ang_idx.ravel()
        for ia in angle_indices:
            theta = float(self.angles[ia])
            self.neff_for(ia)
            res = self._angle(theta)
            if res is None:
                continue
            lsnr, lswk, lkt, i0, k0, rs, j0 = res
            t = np.radians(theta)
            cs, sn = np.cos(t), np.sin(t)
            pu = self._pe * cs - self._pn * sn
            pv = self._pe * sn + self._pn * cs
            li = np.rint(pu / h).astype(np.intp) - i0
            lk = np.rint(pv / (h * rs)).astype(np.intp) - k0
            nr, nu = lsnr.shape
            have = (lk >= 0) & (lk < nr) & (li >= 0) & (li < nu)
            pix = np.flatnonzero(have)
            lf = lk[pix] * nu + li[pix]
            # Compared in the stored precision, so a split grid merges to the same result.
            snr = lsnr.ravel()[lf].astype(np.float32)
            upd = snr > bsnr[pix]
            pix, lf = pix[upd], lf[upd]
            kt = lkt.ravel()[lf]
            bsnr[pix] = snr[upd]
            bamp[pix] = lswk.ravel()[lf] / sww[kt]
            bkt[pix] = kt
            bang[pix] = ia
        return best


def match(z: np.ndarray, dx_e: float, dy_n: float, d: float, kts: np.ndarray | None = None,
          angles: np.ndarray | None = None, row_step: int | None = None
          ) -> tuple[BestFit, Matcher]:
    """Single-process search of the whole (strike, kt) grid."""
    m = Matcher(z, dx_e, dy_n, d, kts, angles, row_step)
    return m.run(range(len(m.angles))), m

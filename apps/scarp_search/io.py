"""GeoTIFF input and output (rasterio); outputs are written atomically."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from lasair_parallel.tasks.outputs import atomic_write
from rasterio.io import MemoryFile


@dataclass(frozen=True)
class Dem:
    """Elevations (float64 copy, NaN = nodata) with the georeferencing needed downstream."""

    z: np.ndarray
    transform: rasterio.Affine
    crs: object

    @property
    def dx_e(self) -> float:
        """Metres east per column."""
        return float(self.transform.a)

    @property
    def dy_n(self) -> float:
        """Metres north per row (negative when rows run south, the usual north-up layout)."""
        return float(self.transform.e)

    def xy(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of pixel centres."""
        t = self.transform
        c, r = np.asarray(cols) + 0.5, np.asarray(rows) + 0.5
        return t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f


def read_dem(path: str | Path) -> Dem:
    """Read band 1 as float64 with nodata set to NaN; rotated geotransforms are refused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            z = src.read(1).astype(np.float64)
            if src.nodata is not None and np.isfinite(src.nodata):
                z[z == src.nodata] = np.nan
            t, crs = src.transform, src.crs
    if t.b != 0 or t.d != 0:
        raise ValueError(f"{path}: rotated geotransforms are not supported")
    return Dem(z=z, transform=t, crs=crs)


def write_geotiff(path: str | Path, bands: list[np.ndarray], names: list[str],
                  transform: rasterio.Affine, crs: object) -> None:
    """Write float32 bands (NaN nodata) with the input's geotransform and CRS, atomically."""
    ny, nx = bands[0].shape
    profile = {"driver": "GTiff", "width": nx, "height": ny, "count": len(bands),
               "dtype": "float32", "nodata": float("nan"), "transform": transform,
               "compress": "deflate"}
    if crs is not None:
        profile["crs"] = crs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                for i, (b, name) in enumerate(zip(bands, names, strict=True), start=1):
                    dst.write(b.astype(np.float32), i)
                    dst.set_band_description(i, name)
            data = mem.read()
    with atomic_write(path, "wb") as f:
        f.write(data)

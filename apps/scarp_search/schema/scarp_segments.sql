-- scarp_search detections.csv: one row per detected segment (apps/scarp_search/gather.py),
-- strongest first.  Coordinates in the DEM's CRS (metres); strike clockwise from north.
CREATE TABLE IF NOT EXISTS scarp_segments (
  segment INT NOT NULL PRIMARY KEY,
  x0 DOUBLE NOT NULL, y0 DOUBLE NOT NULL, x1 DOUBLE NOT NULL, y1 DOUBLE NOT NULL,
  length_m DOUBLE NOT NULL,
  strike_deg DOUBLE NOT NULL,
  kt_m2 DOUBLE NOT NULL,
  amplitude_m DOUBLE NOT NULL,
  snr DOUBLE NOT NULL,
  snr_max DOUBLE NOT NULL,
  n_pixels INT NOT NULL
);

-- Lasair `objects` features as written by apps/rebuild_objects (columns in shard order).
-- NULL = missing (empty CSV field); real zeros are kept.  See apps/rebuild_objects/features.py.
CREATE TABLE IF NOT EXISTS objects (
  objectId VARCHAR(16) NOT NULL PRIMARY KEY,
  ncand INT NOT NULL,
  ramean DOUBLE, rastd DOUBLE, decmean DOUBLE, decstd DOUBLE,
  glonmean DOUBLE, glatmean DOUBLE,
  htm16 BIGINT,
  jdmin DOUBLE, jdmax DOUBLE, jdgmax DOUBLE, jdrmax DOUBLE,
  maggmin DOUBLE, maggmax DOUBLE, maggmean DOUBLE,
  magrmin DOUBLE, magrmax DOUBLE, magrmean DOUBLE,
  gmag DOUBLE, rmag DOUBLE,
  dmdt_g DOUBLE, dmdt_g_err DOUBLE, dmdt_g_2 DOUBLE,
  dmdt_r DOUBLE, dmdt_r_err DOUBLE, dmdt_r_2 DOUBLE,
  g_minus_r DOUBLE, jd_g_minus_r DOUBLE,
  ncandgp INT NOT NULL, ncandgp_7 INT NOT NULL, ncandgp_14 INT NOT NULL,
  sgmag1 DOUBLE, srmag1 DOUBLE, sgscore1 DOUBLE, distpsnr1 DOUBLE,
  ssnamenr VARCHAR(32),
  mag_g02 DOUBLE, mag_g08 DOUBLE, mag_g28 DOUBLE,
  mag_r02 DOUBLE, mag_r08 DOUBLE, mag_r28 DOUBLE,
  KEY htm16 (htm16)
);

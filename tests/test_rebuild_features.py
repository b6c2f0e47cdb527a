"""rebuild_objects features: vectorized code against the plain per-object reference."""

from __future__ import annotations

import csv
import hashlib
import io
import math

import numpy as np
import pytest
from lasair_parallel.apps.rebuild_objects import shard
from lasair_parallel.apps.rebuild_objects.features import COLUMNS, compute_features
from lasair_parallel.apps.rebuild_objects.galactic import radec_to_galactic
from lasair_parallel.apps.rebuild_objects.htm import htm_id, htm_id_reference
from lasair_parallel.apps.rebuild_objects.sources import open_source
from lasair_parallel.apps.rebuild_objects.sources.base import from_frame
from reference_features import reference_features, rows_of


def assert_matches_reference(det, window_days=0.0):
    """Every feature of every object equal to the reference: floats to 1e-9, NULLs identical."""
    ids, f = compute_features(det, window_days)
    where = {oid: i for i, oid in enumerate(ids)}
    checked = 0
    for oid, rows in rows_of(det).items():
        ref = reference_features(rows, window_days)
        if ref is None:
            assert oid not in where, oid
            continue
        i = where[oid]
        for name, kind in COLUMNS:
            got, want = f[name][i], ref[name]
            if kind == "f":
                if want is None:
                    assert math.isnan(got), (oid, name, got)
                else:
                    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0), (oid, name, got,
                                                                                want)
            else:
                assert got == want, (oid, name, got, want)
        checked += 1
    assert checked == len(ids)
    return ids, f


@pytest.mark.parametrize("window", [0.0, 30.0, 5.0])
def test_real_sample_matches_reference(window):
    src = open_source("sample")
    ids, counts = src.list_objects()
    assert len(ids) == 364 and counts.sum() == 3630
    det = src.read_range(ids[0], ids[-1])
    got_ids, f = assert_matches_reference(det, window)
    assert len(got_ids) == 364
    assert np.isfinite(f["g_minus_r"]).sum() > 0 and np.isfinite(f["dmdt_r"]).sum() > 0
    assert (f["ssnamenr"] != None).sum() > 0  # noqa: E711


# Long-lived stationary sources whose latest detection matches no asteroid though an earlier one
# did (anchors.md section 2b: Lasair's create_features leaves them untagged).
UNTAGGED = ("ZTF18abtgkkp", "ZTF18abttnny", "ZTF18acujvrd")


def test_ssnamenr_from_latest_detection_as_lasair():
    """The 3 named sample objects: an earlier detection has an ssnamenr, the latest has none, so
    the feature is NULL (a `ssnamenr IS NULL` filter keeps them); every object's ssnamenr is
    its latest detection's, computed here straight from the sample rows."""
    src = open_source("sample")
    ids, _ = src.list_objects()
    det = src.read_range(ids[0], ids[-1])
    got_ids, f = compute_features(det)
    where = {oid: i for i, oid in enumerate(got_ids)}
    per_object = rows_of(det)
    for oid in UNTAGGED:
        rows = sorted(per_object[oid], key=lambda r: (r["jd"], r["candid"]))
        assert rows[-1]["ssnamenr"] is None
        assert any(r["ssnamenr"] is not None for r in rows[:-1]), oid  # the old rule tagged it
        assert f["ssnamenr"][where[oid]] is None, oid
    tagged = 0
    for oid, rows in per_object.items():
        latest = max(rows, key=lambda r: (r["jd"], r["candid"]))
        assert f["ssnamenr"][where[oid]] == latest["ssnamenr"], oid
        tagged += latest["ssnamenr"] is not None
    assert tagged > 0


@pytest.mark.parametrize("window", [0.0, 20.0])
def test_synthetic_matches_reference(window):
    src = open_source("synthetic:1500:7")
    ids, _ = src.list_objects()
    det = src.read_range(ids[0], ids[-1])
    _, f = assert_matches_reference(det, window)
    # the synthetic data exercises duplicate jd and single-band objects
    assert np.isnan(f["maggmin"]).any() and np.isnan(f["magrmin"]).any()


def test_window_drops_old_detections():
    src = open_source("sample")
    ids, _ = src.list_objects()
    det = src.read_range(ids[0], ids[-1])
    _, whole = compute_features(det, 0.0)
    _, recent = compute_features(det, 5.0)
    assert (recent["ncand"] <= whole["ncand"]).all() and (recent["ncand"] < whole["ncand"]).any()
    assert np.all(recent["jdmax"] - recent["jdmin"] < 5.0)


def frame(rows):
    import pandas as pd

    base = dict(objectId="ZTFtest", candid=None, jd=2460000.5, fid=1, magpsf=18.0, sigmapsf=0.1,
                isdiffpos="t", ra=10.0, dec=20.0, nid=1000, rb=0.9, drb=np.nan, ssnamenr=None,
                sgmag1=np.nan, srmag1=np.nan, sgscore1=np.nan, distpsnr1=np.nan)
    out = []
    for i, r in enumerate(rows):
        d = dict(base, candid=1000 + i)
        d.update(r)
        out.append(d)
    return from_frame(pd.DataFrame(out))


def one(rows, window=0.0):
    det = frame(rows)
    ids, f = assert_matches_reference(det, window)
    return {k: v[0] for k, v in f.items()} if len(ids) else None


def test_one_detection():
    f = one([{"magpsf": 17.5, "sgmag1": 0.0, "drb": 0.0}])
    assert f["ncand"] == 1 and f["gmag"] == 17.5 and f["maggmean"] == 17.5
    assert f["rastd"] == 0.0 and f["decstd"] == 0.0  # real zeros, not NULL
    assert f["sgmag1"] == 0.0
    assert math.isnan(f["dmdt_g"]) and math.isnan(f["rmag"]) and math.isnan(f["jdrmax"])
    assert f["mag_g02"] == 17.5 and f["mag_g28"] == 17.5


def test_single_band_and_duplicate_jd():
    f = one([{"jd": 2460000.5, "magpsf": 18.0}, {"jd": 2460001.5, "magpsf": 17.0},
             {"jd": 2460001.5, "magpsf": 16.5}])
    assert math.isnan(f["dmdt_g"])  # dt = 0 -> NULL, never a division by zero
    assert f["dmdt_g_2"] == pytest.approx(1.0)  # 18.0 -> 17.0 in one day: brightening > 0
    assert math.isnan(f["magrmin"]) and math.isnan(f["g_minus_r"])


def test_dmdt_sign_and_quadrature_error():
    f = one([{"jd": 2460000.5, "magpsf": 18.0, "sigmapsf": 0.3},
             {"jd": 2460002.5, "magpsf": 17.0, "sigmapsf": 0.4}])
    assert f["dmdt_g"] == pytest.approx(0.5) and f["dmdt_g_err"] == pytest.approx(0.25)


def test_all_negative_detections():
    f = one([{"isdiffpos": "f", "jd": 2460000.5 + i, "fid": 1 + i % 2, "nid": 1000}
             for i in range(4)])
    assert f["ncandgp"] == 0 and math.isnan(f["dmdt_g"]) and math.isnan(f["g_minus_r"])
    assert f["ncand"] == 4 and not math.isnan(f["gmag"])


def test_nan_magnitudes_are_not_measurements():
    f = one([{"jd": 2460000.5, "magpsf": 18.0}, {"jd": 2460001.5, "magpsf": np.nan},
             {"jd": 2460002.5, "magpsf": np.nan, "fid": 2}])
    assert f["ncand"] == 3 and f["gmag"] == 18.0 and f["jdgmax"] == 2460001.5
    assert math.isnan(f["rmag"]) and f["jdrmax"] == 2460002.5 and math.isnan(f["mag_r02"])


def test_i_band_is_neither_g_nor_r():
    f = one([{"jd": 2460000.5, "fid": 2, "magpsf": 18.0}, {"jd": 2460001.5, "fid": 3,
                                                          "magpsf": 15.0}])
    assert f["rmag"] == 18.0 and f["magrmin"] == 18.0 and f["jdmax"] == 2460001.5
    assert f["ncand"] == 2


def test_colour_uses_latest_common_night():
    f = one([{"jd": 2460000.6, "fid": 1, "magpsf": 18.0, "nid": 10},
             {"jd": 2460000.7, "fid": 2, "magpsf": 17.5, "nid": 10},
             {"jd": 2460003.6, "fid": 1, "magpsf": 18.2, "nid": 13},
             {"jd": 2460003.7, "fid": 1, "magpsf": 18.4, "nid": 13},
             {"jd": 2460003.8, "fid": 2, "magpsf": 17.6, "nid": 13},
             {"jd": 2460005.8, "fid": 2, "magpsf": 17.0, "nid": 15}])
    assert f["g_minus_r"] == pytest.approx(18.4 - 17.6) and f["jd_g_minus_r"] == 2460003.7


def test_no_detections_no_row():
    det = frame([{"candid": np.nan}])
    ids, f = compute_features(det, 0.0)
    assert len(ids) == 0 and all(len(v) == 0 for v in f.values())


def test_ra_wraps_at_zero():
    f = one([{"ra": 359.9999}, {"ra": 0.0001, "jd": 2460001.5}])
    assert f["ramean"] == pytest.approx(0.0, abs=1e-9) or f["ramean"] == pytest.approx(360.0)
    assert f["rastd"] == pytest.approx(0.36)


def test_galactic_known_points():
    # Galactic centre (Reid & Brunthaler 2004, Sgr A*) and north galactic pole, ICRS.
    lon, lat = radec_to_galactic(np.array([266.40499, 192.85948]), np.array([-28.93617, 27.12825]))
    assert lon[0] % 360 == pytest.approx(0.0, abs=1e-4) or lon[0] == pytest.approx(360.0, abs=1e-4)
    assert lat[0] == pytest.approx(0.0, abs=1e-4) and lat[1] == pytest.approx(90.0, abs=1e-4)
    # astropy 8.0 SkyCoord(ra=10, dec=20, unit='deg').galactic
    lon, lat = radec_to_galactic(np.array([10.0]), np.array([20.0]))
    assert lon[0] == pytest.approx(119.26936835, abs=1e-6)
    assert lat[0] == pytest.approx(-42.79039293, abs=1e-6)


# (ra, dec) -> level-16 id from lsst-sphgeom 30.2026 HtmPixelization(16).index(...), an
# independent HTM implementation.
HTM_KNOWN = [((0.0, 0.0), 66571993088), ((10.0, 10.0), 66789073514), ((45.0, 45.0), 68585209840),
             ((180.0, -30.0), 41446434406), ((270.5, -89.9), 48318391443),
             ((359.99, 0.01), 51539607747)]


def test_htm16_published_ids():
    ra = np.array([p[0][0] for p in HTM_KNOWN])
    dec = np.array([p[0][1] for p in HTM_KNOWN])
    assert htm_id(ra, dec, 16).tolist() == [p[1] for p in HTM_KNOWN]
    assert htm_id(np.array([10.0]), np.array([10.0]), 0)[0] == 15  # N3
    assert htm_id(np.array([np.nan]), np.array([1.0]), 16)[0] == -1


def test_htm16_against_lsst_sphgeom():
    sphgeom = pytest.importorskip("lsst.sphgeom", reason="lsst-sphgeom not installed")
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 3000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 3000)))
    pix = sphgeom.HtmPixelization(16)
    want = [pix.index(sphgeom.UnitVector3d(sphgeom.LonLat.fromDegrees(a, d)))
            for a, d in zip(ra, dec, strict=True)]
    assert htm_id(ra, dec, 16).tolist() == want


def test_htm16_fast_path_is_the_reference_bit_for_bit():
    rng = np.random.default_rng(7)
    n = 60_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # Points on octant planes, poles and trixel edges/corners of many levels, rounded positions.
    k = rng.integers(1, 17, 20_000)
    edge_ra = rng.integers(0, 2**17, 20_000) * 360.0 / 2.0**k % 360
    edge_dec = rng.integers(-2**15, 2**15, 20_000) * 90.0 / 2.0**k % 90
    ra = np.concatenate([ra, edge_ra, np.repeat([0.0, 45.0, 90.0, 180.0, 270.0, 360.0], 40),
                         np.round(rng.uniform(0, 360, 5000), 3), [np.nan, 1.0]])
    dec = np.concatenate([dec, edge_dec, np.tile(np.linspace(-90, 90, 40), 6),
                          np.round(rng.uniform(-90, 90, 5000), 2), [1.0, np.nan]])
    np.testing.assert_array_equal(htm_id(ra, dec), htm_id_reference(ra, dec))


def test_shard_text_is_the_same_without_orjson(monkeypatch):
    det = open_source("synthetic:3000").read_index_range(0, 3000)
    _, f = compute_features(det)
    f["dmdt_g"][:4] = [3.2e-05, 1e16, -1.5e-7, np.inf]  # formats where repr and orjson differ
    f["ssnamenr"][5] = 'a, "b"'  # needs CSV quoting: the per-value path for its chunk
    f["ssnamenr"][3000 - 7] = "2e+5"  # a '+' in a string: must not be taken for an exponent
    fast = shard.shard_bytes(f)
    monkeypatch.setattr(shard, "orjson", None)
    slow = shard.shard_bytes(f)
    # Compare digests: a failing == on two megabytes makes pytest's diff run for minutes.
    first_diff = next((i for i, (a, b) in enumerate(zip(slow, fast)) if a != b), None)
    assert hashlib.sha256(slow).hexdigest() == hashlib.sha256(fast).hexdigest(), (
        first_diff, slow[first_diff - 40:first_diff + 40] if first_diff else None,
        fast[first_diff - 40:first_diff + 40] if first_diff else None)
    col = [c for c, _ in COLUMNS].index("dmdt_g")
    rows = list(csv.reader(io.StringIO(fast.decode())))
    assert [r[col] for r in rows[1:5]] == ["0.000032", "1e16", "-1.5e-7", ""]
    assert rows[6][[c for c, _ in COLUMNS].index("ssnamenr")] == 'a, "b"'


def test_fast_shard_path_formats_exponents_like_the_slow_path(monkeypatch):
    """The orjson path (plain strings only) writes 1e16 whatever orjson's version (3.9+ writes
    1e+16), so shards do not depend on what a worker has installed."""
    det = open_source("synthetic:500").read_index_range(0, 500)
    _, f = compute_features(det)
    f["dmdt_g"][:3] = [3.2e-05, 1e16, 1.2345678901234568e17]
    assert shard.orjson is not None and shard._plain_strings(
        [f[name] for name, _ in COLUMNS])  # this chunk takes the fast path
    fast = shard.shard_bytes(f)
    monkeypatch.setattr(shard, "orjson", None)
    assert hashlib.sha256(shard.shard_bytes(f)).digest() == hashlib.sha256(fast).digest()
    col = [c for c, _ in COLUMNS].index("dmdt_g")
    rows = list(csv.reader(io.StringIO(fast.decode())))
    assert [r[col] for r in rows[1:4]] == ["0.000032", "1e16", "1.2345678901234568e17"]


def _deferred_copy(det, rng):
    """``det`` with its LATE_COLUMNS and ssnamenr as Deferred columns over a shuffled storage
    order (as a scan leaves them), the other columns as they are."""
    from lasair_parallel.apps.rebuild_objects.sources.base import (
        LATE_COLUMNS,
        Deferred,
        Detections,
    )

    q = rng.permutation(det.n_rows)  # storage row k holds object-order row q[k]
    perm = np.argsort(q)  # object-order row i is storage row perm[i]
    cols = dict(det.cols)
    for c in LATE_COLUMNS:
        stored = det.cols[c][q]
        cols[c] = Deferred(stored.__getitem__, perm.copy(),
                           lambda stored=stored: np.isfinite(stored))
    ss = Deferred(det.ssnamenr[q].__getitem__, perm.copy())
    return Detections(det.ids, det.counts, cols, ss, det.candid)


@pytest.mark.parametrize("window", [0.0, 5.0])
@pytest.mark.parametrize("unsorted", [False, True])
def test_deferred_late_columns_give_the_gathered_shard(window, unsorted):
    """A scanned block leaves the PS1 fields and ssnamenr ungathered (sources.base.Deferred):
    the features (window, the feature code's own sort, a NaN jd, the forked halves' slices)
    are byte for byte those of the gathered columns."""
    from lasair_parallel.apps.rebuild_objects.sources.base import Detections, objects_slice

    src = open_source("sample")
    ids, _ = src.list_objects()
    det = src.read_range(ids[0], ids[-1])
    rng = np.random.default_rng(7)
    if unsorted:  # rows reversed within each object, candid given: the feature code sorts
        starts = np.cumsum(det.counts) - det.counts
        order = np.concatenate([np.arange(s + n - 1, s - 1, -1)
                                for s, n in zip(starts, det.counts)]).astype(np.int64)
        cols = {k: v[order] for k, v in det.cols.items()}
        cols["jd"][5] = np.nan  # the NaN-jd rule too
        det = Detections(det.ids, det.counts, cols, det.ssnamenr[order],
                         np.arange(det.n_rows, dtype=np.int64)[::-1].copy())
    lazy = _deferred_copy(det, rng)
    assert not isinstance(lazy.cols["sgmag1"], np.ndarray)
    want = shard.shard_bytes(compute_features(det, window)[1])
    assert shard.shard_bytes(compute_features(lazy, window)[1]) == want
    half = len(det.ids) // 2
    parts = [compute_features(objects_slice(lazy, a, b), window)[1]
             for a, b in ((0, half), (half, len(det.ids)))]
    text = b"".join([shard.shard_bytes(parts[0])] + [
        shard.shard_bytes(parts[1]).split(b"\n", 1)[1]])
    assert text == want


def test_deferred_column_moves_rows_and_refuses_another_column():
    from lasair_parallel.apps.rebuild_objects.sources.base import Deferred

    values = np.array([10.0, np.nan, 30.0, 40.0])
    d = Deferred(values.__getitem__, np.array([3, 2, 1, 0]), lambda: np.isfinite(values))
    assert len(d) == 4 and d[0] == 40.0 and d.tolist()[1] == 30.0
    np.testing.assert_array_equal(np.asarray(d[np.array([True, False, True, False])]),
                                  [40.0, np.nan])
    assert d.finite().tolist() == [True, True, False, True]
    e = d.copy()
    e[:2] = d[2:]  # rows moved, values never copied
    assert e.rows.tolist() == [1, 0, 1, 0] and d.rows.tolist() == [3, 2, 1, 0]
    np.testing.assert_array_equal(np.asarray(e), [np.nan, 10.0, np.nan, 10.0])
    other = Deferred(values.copy().__getitem__, np.arange(4))
    with pytest.raises(TypeError):
        e[:1] = other[:1]
    with pytest.raises(TypeError):
        other.finite()

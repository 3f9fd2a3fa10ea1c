"""The point-in-polygon join with shapely 2 / GEOS, for `meridian run` to be compared with.

Reads points from a .npy file (N x 2 float64), countries from GeoJSON, builds an STRtree,
finds (point row, country row) pairs where the country contains the point, and writes them
sorted as `row,id` CSV -- the same output `meridian run examples/pip_join.masm` writes.

    python3 benches/shapely_pip.py POINTS.npy data/countries.geojson OUT.csv
"""
import json
import sys
import time

import numpy as np
import shapely

t0 = time.perf_counter()
pts = np.load(sys.argv[1])
with open(sys.argv[2]) as f:
    features = json.load(f)["features"]
zones = np.array([shapely.geometry.shape(f["geometry"]) for f in features])
points = shapely.points(pts)
t1 = time.perf_counter()
tree = shapely.STRtree(zones)
t2 = time.perf_counter()
# predicate "within": points that lie within the tree's polygons (interior, as JTS contains)
pairs = tree.query(points, predicate="within")
order = np.lexsort((pairs[1], pairs[0]))
rows, ids = pairs[0][order], pairs[1][order]
t3 = time.perf_counter()
with open(sys.argv[3], "w") as f:
    f.write("row,id\n")
    np.savetxt(f, np.column_stack((rows, ids)), fmt="%d", delimiter=",")
t4 = time.perf_counter()
print(f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}): {len(rows)} pairs; "
      f"read {t1-t0:.3f}s index {t2-t1:.3f}s join {t3-t2:.3f}s write {t4-t3:.3f}s total {t4-t0:.3f}s")

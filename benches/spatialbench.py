#!/usr/bin/env python3
"""SpatialBench's twelve queries on meridian (`meridian sql`), SedonaDB and DuckDB, in one run.

    python benches/spatialbench.py --meridian target/release/meridian [--sf 1] [--data DIR]
        [--engines meridian,sedonadb,duckdb] [--queries q1,q2] [--runs 1] [--timeout 600] [--json FILE]

Each engine runs each query in a process of its own (killed at --timeout), timed from
registering the tables to the result written as Parquet — the same span for every engine —
and prints a table of seconds and meridian's ratio to the faster of the others; with --runs N
each query runs N times on each engine, the engines in turn, and the table holds each one's
median (an engine that fails or times out once is not run again on that query). Results are
then compared with the first engine that ran the query among SedonaDB, DuckDB (in that
order): the same rows in the same order where the query orders them all, else as multisets;
floats to 1e-6 relative (1e-9 absolute), geometries as shapely reads them (WKB).

Each engine gets its own dialect's text of the query (benches/spatialbench_queries.py, from
apache/sedona-spatialbench): meridian the base dialect (SedonaSpark's), as SpatialBench
writes it.

The data: `spatialbench-cli` (pip install spatialbench-cli) makes trip, building and customer
at the scale factor; its zone table is downloaded from the internet by the generator, which
these machines cannot reach, so the zone table is ours: the shipped countries, a polygon for
Coconino County (Q2's) and 1,000 random 12-gons, written once (zone.parquet) and read by
every engine. Needs: pyarrow, shapely, sedonadb (whose Python package also imports
geoarrow-pyarrow, not among its requirements), duckdb and duckdb-extension-spatial.
"""

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import spatialbench_queries as sq  # noqa: E402

TABLES = ["trip", "building", "customer", "zone"]
DIALECT = {
    "meridian": sq.SpatialBenchBenchmark,
    "sedonadb": sq.SedonaDBSpatialBenchBenchmark,
    "duckdb": sq.DuckDBSpatialBenchBenchmark,
}


def make_zone(path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    countries = json.load(open(os.path.join(REPO, "data", "countries.geojson")))
    names, geoms = [], []
    for f in countries["features"]:
        names.append(f["properties"].get("name") or "country")
        geoms.append(shapely.geometry.shape(f["geometry"]))
    names.append("Coconino County")
    geoms.append(shapely.Polygon([(-112.75, 34.25), (-110.75, 34.25), (-110.75, 37.0), (-112.75, 37.0)]))
    rng = random.Random(7)
    for i in range(1000):
        cx, cy, r = rng.uniform(-170, 170), rng.uniform(-55, 70), rng.uniform(0.3, 3.0)
        ring = [
            (cx + r * math.cos(a) * rng.uniform(0.6, 1), cy + r * math.sin(a) * rng.uniform(0.6, 1))
            for a in (2 * math.pi * k / 12 for k in range(12))
        ]
        names.append(f"zone {i}")
        geoms.append(shapely.Polygon(ring))
    table = pa.table(
        {
            "z_zonekey": pa.array(range(1, len(names) + 1), pa.int64()),
            "z_name": pa.array(names),
            "z_boundary": pa.array(shapely.to_wkb(geoms), pa.binary()),
        }
    )
    pq.write_table(table, path + ".part")
    os.replace(path + ".part", path)


def make_data(data, sf):
    os.makedirs(data, exist_ok=True)
    if not all(os.path.exists(os.path.join(data, f"{t}.parquet")) for t in ["trip", "building", "customer"]):
        cli = os.path.join(os.path.dirname(sys.executable), "spatialbench-cli")
        cmd = [cli if os.path.exists(cli) else "spatialbench-cli", "-s", str(sf)]
        cmd += ["-T", "trip", "-T", "building", "-T", "customer", "-f", "parquet", "-o", data]
        print("generating:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    if not os.path.exists(os.path.join(data, "zone.parquet")):
        make_zone(os.path.join(data, "zone.parquet"))


# The child processes: one query on one engine, the result written to `out`, the seconds from
# registering the tables to the file written printed as the last line.
CHILD = {
    "sedonadb": r"""
import sys, time, pyarrow.parquet as pq, sedonadb
data, out, query = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
t = time.perf_counter()
sd = sedonadb.connect()
for name in ["trip", "building", "customer", "zone"]:
    sd.read_parquet(f"{data}/{name}.parquet").to_view(name)
table = sd.sql(query).to_arrow_table()
pq.write_table(table, out)
print(time.perf_counter() - t)
""",
    "duckdb": r"""
import sys, time, glob, os, pyarrow.parquet as pq, duckdb, duckdb_extension_spatial as ext
data, out, query = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
spatial = glob.glob(os.path.join(os.path.dirname(ext.__file__), "extensions", "*", "spatial.duckdb_extension"))[0]
t = time.perf_counter()
con = duckdb.connect()
con.sql(f"LOAD '{spatial}'")
for name in ["trip", "building", "customer", "zone"]:
    con.sql(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{data}/{name}.parquet')")
rel = con.sql(query)
# DuckDB's GEOMETRY comes out as its own blob, written as WKB; an INTERVAL (AVG of a time
# difference) has no Parquet type, written as its seconds (`epoch`).
def column(c, ty):
    return {"GEOMETRY": f'ST_AsWKB("{c}") AS "{c}"', "INTERVAL": f'epoch("{c}") AS "{c}"'}.get(str(ty), f'"{c}"')
if any(str(ty) in ("GEOMETRY", "INTERVAL") for ty in rel.types):
    rel = rel.project(", ".join(column(c, ty) for c, ty in zip(rel.columns, rel.types)))
table = rel.to_arrow_table()
pq.write_table(table, out)
print(time.perf_counter() - t)
""",
}


def run_one(engine, args, query, out):
    """(seconds, None) or (None, why)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(query)
        qfile = f.name
    try:
        if engine == "meridian":
            cmd = [args.meridian, "sql", query, "--out", out]
            for t in TABLES:
                cmd += ["--table", f"{t}={args.data}/{t}.parquet"]
        else:
            cmd = [sys.executable, "-c", CHILD[engine], args.data, out, qfile]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return None, f"over {args.timeout} s"
        if p.returncode != 0:
            lines = [line for line in (p.stderr + p.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "rror" in line] or lines
            return None, "failed: " + (errors[-1][:160] if errors else f"exit {p.returncode}")
        if engine == "meridian":
            m = re.search(r"rows to .* in ([0-9.]+) s", p.stdout)
            return (float(m.group(1)), None) if m else (None, "no time in: " + p.stdout[-200:])
        return float(p.stdout.strip().splitlines()[-1]), None
    finally:
        os.unlink(qfile)


def normalise(path, sort=False):
    """The result's rows as tuples of comparable values; sorted by every column (in order)
    with `sort`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    table = pq.read_table(path)
    # View types as plain ones, names by position (results may repeat a name).
    plain = {pa.binary_view(): pa.binary(), pa.string_view(): pa.string()}
    table = pa.table([c.cast(plain.get(c.type, c.type)) for c in table.columns], names=[f"c{i}" for i in range(table.num_columns)])
    if sort:
        table = table.sort_by([(name, "ascending") for name in table.column_names])
    columns = []
    for col in table.columns:
        t = col.type
        values = col.to_pylist()
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            values = [None if v is None else shapely.from_wkb(v) for v in values]
        elif pa.types.is_decimal(t):
            values = [None if v is None else float(v) for v in values]
        elif pa.types.is_duration(t):
            values = [None if v is None else v.total_seconds() for v in values]
        elif pa.types.is_interval(t):
            # DataFusion's AVG of a time difference: (months, days, nanoseconds).
            values = [None if v is None else v.months * 30 * 86400 + v.days * 86400 + v.nanoseconds / 1e9 for v in values]
        elif pa.types.is_timestamp(t) or pa.types.is_date(t):
            values = [None if v is None else str(v) for v in values]
        columns.append(values)
    return list(zip(*columns)) if columns else []


def same_value(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if hasattr(a, "geom_type") and hasattr(b, "geom_type"):
        import shapely

        return shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9)
    return a == b


def compare(ours, theirs):
    """None when the results agree, else the first difference."""
    if len(ours) != len(theirs):
        return f"{len(ours)} rows against {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if len(a) != len(b):
            return f"{len(a)} columns against {len(b)}"
        for j, (x, y) in enumerate(zip(a, b)):
            if not same_value(x, y):
                return f"row {i}, column {j}: {x!r} against {y!r}"
    return None


# Past this many rows a result is compared column by column in Arrow and numpy: as Python
# objects, Q12's 30M rows from two engines filled the machine's memory.
COLUMNAR_ROWS = 1_000_000


def plain_table(path):
    """The result as a table of plain types (views cast), columns named by position."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    plain = {pa.binary_view(): pa.binary(), pa.string_view(): pa.string()}
    return pa.table([c.cast(plain.get(c.type, c.type)).combine_chunks() for c in table.columns], names=[f"c{i}" for i in range(table.num_columns)])


def compare_columnar(a, b):
    """compare() for two plain tables, a column at a time: floats to the same tolerance,
    geometries (WKB) equal as bytes or else as normalised shapes, the rest exactly."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import shapely

    if a.num_rows != b.num_rows:
        return f"{a.num_rows} rows against {b.num_rows}"
    if a.num_columns != b.num_columns:
        return f"{a.num_columns} columns against {b.num_columns}"
    for j, (x, y) in enumerate(zip(a.columns, b.columns)):
        xn, yn = pc.is_null(x).to_numpy(zero_copy_only=False), pc.is_null(y).to_numpy(zero_copy_only=False)
        bad = xn != yn
        t = x.type
        if pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_integer(t):
            xv = pc.cast(x, pa.float64()).to_numpy(zero_copy_only=False)
            yv = pc.cast(y, pa.float64()).to_numpy(zero_copy_only=False)
            close = np.isclose(xv, yv, rtol=1e-6, atol=1e-9, equal_nan=True)
            if pa.types.is_integer(t) and pa.types.is_integer(y.type):
                close = pc.equal(x, y).to_numpy(zero_copy_only=False)
            bad |= ~(close | xn | yn)
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            same = pc.fill_null(pc.equal(x, y), True).to_numpy(zero_copy_only=False)
            rest = np.nonzero(~same)[0]
            if len(rest):
                gx = shapely.normalize(shapely.from_wkb(x.take(rest).to_numpy(zero_copy_only=False)))
                gy = shapely.normalize(shapely.from_wkb(y.take(rest).to_numpy(zero_copy_only=False)))
                bad[rest] |= ~shapely.equals_exact(gx, gy, tolerance=1e-9)
        else:
            if x.type != y.type:
                return f"column {j}: {x.type} against {y.type}"
            bad |= ~pc.fill_null(pc.equal(x, y), True).to_numpy(zero_copy_only=False)
        if bad.any():
            i = int(np.argmax(bad))
            return f"row {i}, column {j}: {x[i].as_py()!r} against {y[i].as_py()!r}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meridian", default=os.path.join(REPO, "target", "release", "meridian"))
    ap.add_argument("--sf", default="1")
    ap.add_argument("--data")
    ap.add_argument("--engines", default="meridian,sedonadb,duckdb")
    ap.add_argument("--queries", default=",".join(f"q{i}" for i in range(1, 13)))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.data = os.path.abspath(args.data or os.path.join(REPO, "target", "spatialbench", f"sf{args.sf}"))
    engines = args.engines.split(",")
    make_data(args.data, args.sf)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for q in args.queries.split(","):
            row = results.setdefault(q, {})
            times, failed = {e: [] for e in engines}, {}
            for _ in range(max(args.runs, 1)):
                for engine in engines:
                    if engine in failed:
                        continue
                    text = DIALECT[engine]().queries()[q]
                    out = os.path.join(tmp, f"{q}-{engine}.parquet")
                    secs, why = run_one(engine, args, text, out)
                    if secs is None:
                        failed[engine] = why
                    else:
                        times[engine].append(secs)
                    print(f"{q} {engine}: {secs if secs is not None else why}", file=sys.stderr, flush=True)
            for engine in engines:
                secs = None if engine in failed else statistics.median(times[engine])
                row[engine] = {"seconds": secs, "error": failed.get(engine), "runs": times[engine]}
            # Agreement with the first reference that ran.
            ran = [e for e in ["sedonadb", "duckdb"] if e in engines and row[e]["seconds"] is not None]
            if "meridian" in engines and row["meridian"]["seconds"] is not None and ran:
                ours, theirs = (os.path.join(tmp, f"{q}-{e}.parquet") for e in ("meridian", ran[0]))
                a, b = plain_table(ours), plain_table(theirs)
                rows, columnar = a.num_rows, a.num_rows > COLUMNAR_ROWS
                if columnar:
                    diff = compare_columnar(a, b)
                else:
                    del a, b
                    diff = compare(normalise(ours), normalise(theirs))
                row["order"] = "same order"
                if diff is not None:
                    # Rows an ORDER BY leaves tied (or a query without one) come in any order:
                    # the same rows, sorted by every column, are the same answer.
                    if columnar:
                        keys = [(n, "ascending") for n in a.column_names]
                        sorted_diff = compare_columnar(a.sort_by(keys), b.sort_by(keys))
                    else:
                        sorted_diff = compare(normalise(ours, sort=True), normalise(theirs, sort=True))
                    if sorted_diff is None:
                        row["order"] = f"same rows, tied rows in another order ({diff})"
                    diff = sorted_diff
                if columnar:
                    del a, b
                row["agrees_with"] = ran[0]
                row["difference"] = diff
                row["rows"] = rows
                print(f"{q}: against {ran[0]}: {diff or row['order']}", file=sys.stderr, flush=True)
    # The table.
    header = ["query"] + engines + ["meridian / faster other", "result"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    ratios = []
    for q, row in results.items():
        cells = [q]
        for e in engines:
            r = row[e]
            cells.append(f"{r['seconds']:.3f}" if r["seconds"] is not None else r["error"])
        others = [row[e]["seconds"] for e in engines if e != "meridian" and row[e]["seconds"] is not None]
        m = row.get("meridian", {}).get("seconds")
        if m is not None and others:
            ratio = min(others) / m
            ratios.append(ratio)
            cells.append(f"{ratio:.2f}x")
        else:
            cells.append("-")
        if "agrees_with" in row:
            if row["difference"] is None:
                verdict = "same" if row["order"] == "same order" else "same rows (ties in another order)"
            else:
                verdict = f"DIFFERS: {row['difference']}"
            cells.append(f"{verdict} as {row['agrees_with']} ({row['rows']} rows)")
        else:
            cells.append("-")
        print("| " + " | ".join(cells) + " |")
    if ratios:
        g = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"\ngeometric mean of (faster other / meridian) over {len(ratios)} queries: {g:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

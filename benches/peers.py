"""meridian against the engines users would pick instead, in one run: the point-in-polygon
count of N uniform points read from GeoParquet against the shipped countries (GeoParquet
too), with `meridian run benches/pip_count.masm`, SedonaDB and DuckDB spatial. Every tool
reads the same two files and must give the same count.

    pip install sedonadb duckdb duckdb-ext-spatial
    cargo build --release [--features sql]
    python3 benches/peers.py [--points 10000000] [--runs 5] [--sql]

With --sql, the same SQL also runs on DataFusion with meridian registered (`meridian sql`,
its spatial join a MeridianSpatialJoinExec): SedonaDB's engine with meridian inside it.

The files are made once in --dir by meridian itself (`meridian gen points N --encoding wkb`,
`meridian convert data/countries.geojson`): WKB geometry, which all three read (SedonaDB 0.5
refuses GeoParquet's native `point` encoding, DuckDB 1.4 reads it as a plain struct).

meridian runs as a whole command (process start, reading both files, the index, the join, the
output file); the peers run in this Python process, timed from the query's start to its
result (their import and connection are not counted; DuckDB's extension is loaded first).
Each round runs every tool once, in turn; the first round is a warm-up; medians are printed
with the ratio of each peer's median to meridian's. `--only TOOL` runs one tool once and
prints its count (for timing whole commands from outside).
"""
import argparse
import os
import site
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERY = "SELECT COUNT(*) AS n FROM pts p JOIN zones z ON ST_Contains(z.geometry, p.geometry)"


def prepare(args):
    os.makedirs(args.dir, exist_ok=True)
    pts = os.path.join(args.dir, f"pts-{args.points}.parquet")
    zones = os.path.join(args.dir, "countries.parquet")
    if not os.path.exists(pts):
        subprocess.run([args.meridian, "gen", "points", str(args.points), pts, "--encoding", "wkb"],
                       check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(zones):
        subprocess.run([args.meridian, "convert", os.path.join(ROOT, "data", "countries.geojson"), zones],
                       check=True, stdout=subprocess.DEVNULL)
    return pts, zones


def meridian(args, pts, zones):
    out = os.path.join(args.dir, "out")
    cmd = [args.meridian, "run", os.path.join(ROOT, "benches", "pip_count.masm"),
           "--input", f"pts={pts}", "--input", f"zones={zones}", "--mode", args.mode, "--out", out]
    def run():
        r = subprocess.run(cmd, check=True, capture_output=True, text=True)
        with open(os.path.join(out, "pairs.csv")) as f:
            return int(f.read().split()[1]), r.stdout.strip().splitlines()[-1]
    return run


def meridian_sql(args, pts, zones):
    """The same SQL on DataFusion with meridian registered (`meridian sql`, the binary built
    with `--features sql`), as a whole command like `meridian run`."""
    cmd = [args.meridian, "sql", QUERY, "--table", f"pts={pts}", "--table", f"zones={zones}"]
    def run():
        r = subprocess.run(cmd, check=True, capture_output=True, text=True)
        # The printed table: the count is the one number in its data row.
        rows = [l for l in r.stdout.splitlines() if l.startswith("|") and l.strip("| ").isdigit()]
        return int(rows[0].strip("| ")), r.stdout.strip().splitlines()[-1]
    return run


def sedonadb(args, pts, zones):
    import sedonadb as sdb
    sd = sdb.connect()
    def run():
        sd.read_parquet(pts).to_view("pts", overwrite=True)
        sd.read_parquet(zones).to_view("zones", overwrite=True)
        return int(sd.sql(QUERY).to_arrow_table()["n"][0].as_py()), ""
    return run


def duckdb(args, pts, zones):
    import duckdb as ddb
    con = ddb.connect()
    # The extension from the duckdb-ext-spatial wheel: no download.
    for base in site.getsitepackages():
        ext = os.path.join(base, "duckdb_ext", "extensions", f"v{ddb.__version__}", "linux_amd64",
                           "spatial.duckdb_extension")
        if os.path.exists(ext):
            con.execute(f"LOAD '{ext}'")
            break
    else:
        con.execute("INSTALL spatial; LOAD spatial")
    query = (f"SELECT COUNT(*) FROM read_parquet('{pts}') p JOIN read_parquet('{zones}') z "
             "ON ST_Contains(z.geometry, p.geometry)")
    def run():
        return int(con.execute(query).fetchone()[0]), ""
    return run


def versions():
    import duckdb as ddb
    import sedonadb as sdb
    return f"sedonadb {sdb.__version__}, duckdb {ddb.__version__}"


def main():
    warnings.filterwarnings("ignore")  # SedonaDB warns that PROJ and GDAL are absent: unused here
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=10_000_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dir", default="/tmp/meridian-peers")
    p.add_argument("--meridian", default=os.path.join(ROOT, "target", "release", "meridian"))
    p.add_argument("--mode", default="cpu", choices=["cpu", "gpu", "auto"])
    p.add_argument("--only", choices=["meridian", "meridian-sql", "sedonadb", "duckdb"])
    p.add_argument("--sql", action="store_true",
                   help="also time `meridian sql` (DataFusion + meridian; needs --features sql)")
    args = p.parse_args()
    pts, zones = prepare(args)
    tools = {"meridian": meridian, "sedonadb": sedonadb, "duckdb": duckdb}
    if args.sql or args.only == "meridian-sql":
        tools["meridian-sql"] = meridian_sql
    if args.only:
        n, _ = tools[args.only](args, pts, zones)()
        print(f"{args.only}: {n}")
        return
    runners = {name: make(args, pts, zones) for name, make in tools.items()}
    times = {name: [] for name in runners}
    counts = {}
    detail = ""
    for round_ in range(args.runs + 1):
        for name, run in runners.items():
            t = time.perf_counter()
            n, line = run()
            dt = time.perf_counter() - t
            counts.setdefault(name, set()).add(n)
            if round_ > 0:
                times[name].append(dt)
            if name == "meridian" and line:
                detail = line
    print(f"pip count: {args.points:,} uniform points (WKB GeoParquet) x 177 countries; "
          f"{args.runs} timed rounds after 1 warm-up; {versions()}; {os.cpu_count()} cores")
    base = statistics.median(times["meridian"])
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = "" if name == "meridian" else f"  {med / base:.1f}x meridian's time"
        print(f"  {name:<12} median {med:.3f} s  (min {min(ts):.3f}, max {max(ts):.3f})  "
              f"count {sorted(counts[name])}{ratio}")
    print(f"  meridian's own split, last run: {detail}")
    every = set().union(*counts.values())
    if len(every) != 1:
        print(f"COUNTS DIFFER: {counts}")
        sys.exit(1)
    print(f"  same count from all {len(counts)}: {every.pop():,}")


if __name__ == "__main__":
    main()

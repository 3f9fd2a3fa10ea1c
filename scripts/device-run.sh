#!/usr/bin/env bash
# Runs on the device machine (copied to .evidence/run.sh by scripts/device-evidence). Writes
# its logs under $OUT, at most 8 files (the tool's limit): device.txt, tests.txt,
# roundtrip.txt (with the dispatch experiment), pip.txt, stream.txt, sanitizer.txt,
# resources.txt, summary.txt. Each step has a time limit, and
# the cheap, important steps come first, so a short lease still brings back evidence.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
cd "$root"
summary="$OUT/summary.txt"
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$summary"; }
result() { echo "   exit $1" | tee -a "$summary"; }
# A session's device time is short (15 minutes, machine start included), so the whole script
# keeps to EVIDENCE_BUDGET_S seconds: each step gets its own limit or what is left, whichever
# is less, and a step with under 10 s left is skipped and says so.
budget=${EVIDENCE_BUDGET_S:-480}
deadline=$(( $(date +%s) + budget ))
left() { # left LIMIT: seconds this step may take
  local rest=$(( deadline - $(date +%s) - 5 ))
  if [ "$rest" -lt "$1" ]; then echo "$rest"; else echo "$1"; fi
}
enough() { # enough LIMIT: is there time for this step?
  local t; t=$(left "$1")
  if [ "$t" -lt 10 ]; then echo "   skipped: the budget (${budget} s) is spent" | tee -a "$summary"; return 1; fi
}

# The test binaries find data/ through the path they were built in.
if [ ! -e /work/main ]; then mkdir -p /work && ln -s "$root" /work/main; fi

# NVRTC for compiling the megakernel on the device (CUDA 13: libnvrtc.so.13).
for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda/targets/x86_64-linux/lib "$root/target/nvrtc/nvidia/cu13/lib" \
  $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2>/dev/null); do
  if [ -e "$d/libnvrtc.so.13" ]; then export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; break; fi
done
export MERIDIAN_CUBIN_CACHE="$here/cubins"
export RUST_BACKTRACE=1

step "device"
{
  echo "commit $(cat "$here/commit" 2>/dev/null)"; date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvidia-smi 2>&1 | head -20
  nproc; grep -m1 'model name' /proc/cpuinfo
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  # GDRCopy's driver (a host write straight into device memory: the fastest doorbell known).
  ls -l /dev/gdrdrv 2>&1; lsmod 2>/dev/null | grep -i gdr || echo "no gdrdrv module loaded"
  "$here/meridian" info
} > "$OUT/device.txt" 2>&1
result $?

# EVIDENCE_BILLION=1: first, the streamed join at scale (issue 18): 10^9 points (16 GiB as an
# Arrow file) read, copied to the device batch by batch and joined on the GPU JIT route and
# on the megakernel; the read alone (bench stream) gives the read bound, the join's batches
# (--explain) the compute. Into stream.txt.
if [ -n "${EVIDENCE_BILLION:-}" ]; then
  step "billion: 10^9 points streamed from a 16 GiB Arrow file through the GPU (jit, then interp)"
  enough 200 && {
    f=/tmp/meridian-p1b.arrow
    df -h /tmp
    TIMEFORMAT="wall %R s"
    time timeout -k 5 "$(left 150)" "$here/meridian" gen points 1000000000 "$f" && ls -l "$f"
    time timeout -k 5 "$(left 60)" "$here/meridian" bench stream "$f" --runs 1
    for route in jit interp; do
      echo "== meridian run benches/pip_count.masm --mode gpu --gpu-route $route, 10^9 points"
      time timeout -k 5 "$(left 120)" "$here/meridian" run benches/pip_count.masm --input "pts=$f" \
        --input zones=data/countries.geojson --mode gpu --gpu-route $route --out "/tmp/meridian-out-1b-$route"
      echo "exit $?"; cat "/tmp/meridian-out-1b-$route/pairs.csv"
    done
    rm -f "$f"
  } > "$OUT/stream.txt" 2>&1
  result $?
fi

step "GPU tests (examples, random programs vs the CPU interpreter, overflow) and driver device tests"
{ timeout -k 5 "$(left 150)" "$here/gpu_device" --test-threads=1 --nocapture; echo "gpu_device exit $?";
  timeout -k 5 "$(left 45)" "$here/driver_device" --test-threads=1; echo "driver_device exit $?"; } > "$OUT/tests.txt" 2>&1
tail -3 "$OUT/tests.txt" | tee -a "$summary"

step "round trip: megakernel (poller, then leaders' protocol) vs cuLaunchKernel + sync, 100k each; 64 in flight"
enough 45 && timeout -k 5 "$(left 45)" "$here/meridian" bench roundtrip --trips 100000 --warmup 2000 > "$OUT/roundtrip.txt" 2>&1
result $?

# Issue 18's topology: what the latency lane (one megakernel block an SM, under auto) costs a
# small job, and a program's own kernel launched per job (jit), against the full megakernel
# above.
step "round trip on the lane (auto) and on per-job program kernels (jit), 20k each"
enough 45 && for r in auto jit; do
  timeout -k 5 "$(left 30)" "$here/meridian" bench roundtrip --trips 20000 --warmup 1000 --gpu-route "$r" >> "$OUT/roundtrip.txt" 2>&1
done
result $?

step "pip join: 100M uniform points x countries, CPU executor (all cores) vs GPU megakernel vs GPU JIT"
enough 120 && timeout -k 5 "$(left 120)" "$here/meridian" bench pip --points 100000000 --runs 3 > "$OUT/pip.txt" 2>&1
result $?
# The GPU JIT's point join as one kernel (MERIDIAN_GPU_JIT_JOIN_PATH=join: 214 registers,
# 2,176 B of stack a thread) against the split kernels the runs above took (the default since
# 2026-12-07: the fast path alone, 48 registers and 32 B, then the general kernel over the
# rows it leaves; docs/benchmarks/2026-12-07-join-kernels.md), side by side.
step "pip join with MERIDIAN_GPU_JIT_JOIN_PATH=join"
enough 60 && { echo; echo "== MERIDIAN_GPU_JIT_JOIN_PATH=join"; MERIDIAN_GPU_JIT_JOIN_PATH=join timeout -k 5 "$(left 90)" \
  "$here/meridian" bench pip --points 100000000 --runs 2; } >> "$OUT/pip.txt" 2>&1
result $?
# The same join on the leaders' dispatch protocol of 2026-11 (the runs above: the poller's),
# for a side-by-side of what the protocol costs a large job (fences and `stop` reads a chunk).
step "pip join with MERIDIAN_GPU_PROTOCOL=leaders"
enough 60 && { echo; echo "== MERIDIAN_GPU_PROTOCOL=leaders"; MERIDIAN_GPU_PROTOCOL=leaders timeout -k 5 "$(left 90)" \
  "$here/meridian" bench pip --points 100000000 --runs 2; } >> "$OUT/pip.txt" 2>&1
result $?
# The megakernel under register caps (MERIDIAN_GPU_REGISTERS): fewer registers, more warps.
for cap in ${EVIDENCE_REGISTER_CAPS:-128 96}; do
  step "pip join with MERIDIAN_GPU_REGISTERS=$cap"
  enough 60 && { echo; echo "== MERIDIAN_GPU_REGISTERS=$cap"; MERIDIAN_GPU_REGISTERS=$cap timeout -k 5 "$(left 90)" \
    "$here/meridian" bench pip --points 100000000 --runs 2; } >> "$OUT/pip.txt" 2>&1
  result $?
done

step "placement: where the GPU starts to beat the CPU workers, by class, against the model"
enough 30 && { echo; timeout -k 5 "$(left 90)" "$here/meridian" bench placement --max-rows 4194304 --runs 5; } >> "$OUT/pip.txt" 2>&1
result $?

step "stream: 100M points as an Arrow IPC file read cold and warm; the count join streamed from it"
enough 60 && {
  f=/tmp/meridian-p100m.arrow
  timeout -k 5 "$(left 60)" "$here/meridian" gen points 100000000 "$f" && ls -l "$f"
  timeout -k 5 "$(left 60)" "$here/meridian" bench stream "$f" --cold --runs 2
  timeout -k 5 "$(left 30)" "$here/meridian" bench stream "$f" --runs 2
  # A fresh autotune store: the first GPU run races the GPU's chunks per block (its lines say
  # so), the second loads the winner; `auto` shows where the placement model sends batches.
  export MERIDIAN_AUTOTUNE_PATH="$here/autotune.bin"; rm -f "$MERIDIAN_AUTOTUNE_PATH"
  n=0
  # Then the GPU JIT route: each batch on the program's own kernel beside the megakernel's lane.
  for run in cpu:interp gpu:interp gpu:interp auto:interp gpu:jit; do
    mode=${run%%:*}; route=${run##*:}
    n=$((n + 1))
    echo "== meridian run benches/pip_count.masm --mode $mode --gpu-route $route (run $n)"
    TIMEFORMAT="wall %R s"
    time timeout -k 5 "$(left 30)" "$here/meridian" run benches/pip_count.masm --input "pts=$f" \
      --input zones=data/countries.geojson --mode $mode --gpu-route $route --explain --out "/tmp/meridian-out-$n"
    echo "exit $?"; cat "/tmp/meridian-out-$n/pairs.csv"
  done
  # Programs' own kernels as generated since 2026-12-05 (the point join's fast path only in a
  # join's kernel: the arithmetic bench's takes 32 registers, no stack) against the design
  # before (MERIDIAN_GPU_JIT_JOIN_PATH=always: 212 registers, 880 B of stack), alternated.
  # And the count join's kernel split (the default since 2026-12-07) against whole (`join`).
  for jp in split join split join; do
    echo "== meridian run benches/pip_count.masm --mode gpu --gpu-route jit, MERIDIAN_GPU_JIT_JOIN_PATH=$jp"
    time MERIDIAN_GPU_JIT_JOIN_PATH=$jp timeout -k 5 "$(left 30)" "$here/meridian" run benches/pip_count.masm \
      --input "pts=$f" --input zones=data/countries.geojson --mode gpu --gpu-route jit --explain \
      --out "/tmp/meridian-out-pip-$jp"
    echo "exit $?"; cat "/tmp/meridian-out-pip-$jp/pairs.csv"
  done
  for jp in join always join always; do
    echo "== meridian run benches/mercator_stats.masm --mode gpu --gpu-route jit, MERIDIAN_GPU_JIT_JOIN_PATH=$jp"
    time MERIDIAN_GPU_JIT_JOIN_PATH=$jp timeout -k 5 "$(left 30)" "$here/meridian" run benches/mercator_stats.masm \
      --input "pts=$f" --mode gpu --gpu-route jit --explain --out "/tmp/meridian-out-merc-$jp"
    echo "exit $?"
  done
  rm -f "$f"
} >> "$OUT/stream.txt" 2>&1
result $?

step "dispatch latency experiment (a)-(d)"
pin=""
if [ "$(nproc)" -gt 2 ]; then pin="taskset -c 2"; fi
if [ -n "${EVIDENCE_SKIP_DISPATCH:-}" ]; then echo "   skipped: EVIDENCE_SKIP_DISPATCH" | tee -a "$summary"; else
  enough 45 && timeout -k 5 "$(left 60)" $pin "$here/dispatch_latency" 20000 >> "$OUT/roundtrip.txt" 2>&1
  result $?
fi
step "megakernel resources"
{ for c in "$MERIDIAN_CUBIN_CACHE"/*.cubin; do echo "$c"; cuobjdump --dump-resource-usage "$c" 2>&1 | grep -E 'Function|REG|STACK|SHARED|LOCAL' ; done; } > "$OUT/resources.txt" 2>&1
result $?

step "compute-sanitizer memcheck and racecheck"
# A 2 GiB device heap under the sanitizers (the default, half the free memory, is more than
# memcheck needs to track); the megakernel is handed nothing allocated after its launch.
enough 60 && { MERIDIAN_GPU_HEAP_MIB=2048 MERIDIAN_DIFF_CASES=16 MERIDIAN_JIT_CASES=4 timeout -k 5 "$(left 100)" compute-sanitizer --tool memcheck "$here/gpu_device" --test-threads=1 random_programs; echo "memcheck exit $?";
  MERIDIAN_GPU_HEAP_MIB=2048 MERIDIAN_DIFF_CASES=8 MERIDIAN_JIT_CASES=2 timeout -k 5 "$(left 80)" compute-sanitizer --tool racecheck --racecheck-report hazard "$here/gpu_device" --test-threads=1 random_programs; echo "racecheck exit $?";
  # The same program record read by a kernel launched after its upload (the per-job baseline,
  # first) and by the resident kernel launched before it, its memory from the heap reserved at
  # its launch, then (MERIDIAN_GPU_HEAP_MIB=0, the design before 2026-12-07) allocated after
  # it: memcheck's verdict on each.
  echo "== memcheck of bench roundtrip (per-job launches, then the megakernel; heap of 2 GiB)";
  MERIDIAN_GPU_HEAP_MIB=2048 timeout -k 5 "$(left 60)" compute-sanitizer --tool memcheck --print-limit 3 "$here/meridian" bench roundtrip --trips 20 --warmup 0; echo "memcheck roundtrip exit $?";
  echo "== memcheck of bench roundtrip without a heap (MERIDIAN_GPU_HEAP_MIB=0)";
  MERIDIAN_GPU_HEAP_MIB=0 timeout -k 5 "$(left 45)" compute-sanitizer --tool memcheck --print-limit 3 "$here/meridian" bench roundtrip --trips 20 --warmup 0; echo "memcheck roundtrip (no heap) exit $?"; } > "$OUT/sanitizer.txt" 2>&1
grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|exit|megakernel|per-job' "$OUT/sanitizer.txt" | tee -a "$summary"

step "done"

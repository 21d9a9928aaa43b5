#!/usr/bin/env bash
# The GPU check of the feature kernels (self-check against the oracle and throughput), in two steps.
# It covers what the device executor runs on the accelerator: apply (insert, allocate, resolve,
# windows, re-anchor, accumulate), growth, device-side eviction with tombstones, and the fused
# lookup+gather of serving (batch 1 to 1024), and upload + apply of micro-batches from page-locked
# host memory against pageable memory (what ingest does), on CUDA next to the CPU backend in the same run:
#   bash bench/gpu/run.sh prepare   here: publish bench/Inference.KernelCheck self-contained for
#                                   linux-x64 (no libtorch) and pack it into bench/gpu/out/ (git-ignored)
#   bash bench/gpu/run.sh device    on the lent GPU machine (driver only, no .NET): unpack and run it
#                                   (further arguments, e.g. --quick, go to the program);
#                                   the last thing printed is the markdown table
# With the device tool: run(command="bash bench/gpu/run.sh device",
#                           carry=["bench/gpu/out/kernelcheck.tar.gz"], timeout_s=300)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/gpu/out

case "${1:-}" in
  prepare)
    rm -rf "$out/kernelcheck"
    dotnet publish bench/Inference.KernelCheck -c Release -r linux-x64 --self-contained \
      -p:PublishTrimmed=false -o "$out/kernelcheck"
    tar czf "$out/kernelcheck.tar.gz" -C "$out" kernelcheck
    ls -lh "$out/kernelcheck.tar.gz"
    ;;
  device)
    work=$(mktemp -d)
    tar xzf "$out/kernelcheck.tar.gz" -C "$work"
    # ILGPU opens libcuda.so by its unversioned name; driver folders often ship only libcuda.so.1.
    if ! ldconfig -p | grep -q 'libcuda.so '; then
      lib=$(ldconfig -p | awk '/libcuda.so.1 /{print $NF; exit}')
      if [ -n "$lib" ]; then
        mkdir -p "$work/lib" && ln -sf "$lib" "$work/lib/libcuda.so"
        export LD_LIBRARY_PATH="$work/lib:${LD_LIBRARY_PATH:-}"
      fi
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    DOTNET_gcServer=0 "$work/kernelcheck/Inference.KernelCheck" "${@:2}"
    ;;
  *)
    echo "usage: $0 prepare|device" >&2
    exit 2
    ;;
esac

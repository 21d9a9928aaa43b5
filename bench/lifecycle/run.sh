#!/usr/bin/env bash
# Score latency with a shadow candidate against none, from outside, in one run: the embedded broker, a live stream
# of events and labels, `inference serve`, and h2load (open loop) at fixed rates. The candidate is the serving
# model exported with `inference model export --from` and registered with `inference model load --to` (shadow, no
# automatic promotion; the guard judges it only after 10^7 labels, so it stays in shadow for the whole run);
# `inference model withdraw` takes it away. Off and on alternate, ROUNDS times per rate.
#   bash bench/lifecycle/run.sh      (SECONDS_PER_RUN=15 RATES="1000 2000" ROUNDS=4 by default)
# Prints a markdown table last.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${SECONDS_PER_RUN:-15}
rates=${RATES:-1000 2000}
rounds=${ROUNDS:-4}
port=${PORT:-50073}
http=${HTTP_PORT:-50074}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 2; }

dotnet build -c Release engine/Inference.Host >/dev/null
dotnet build -c Release bench/Inference.Bench >/dev/null
host=engine/Inference.Host/bin/Release/net10.0/inference
bench="dotnet bench/Inference.Bench/bin/Release/net10.0/Inference.Bench.dll"
address=http://127.0.0.1:$port

"$host" dev-kafka --partitions 32 >"$work/broker.out" 2>"$work/broker.err" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog 200000 \
  --events-per-second 20000 --labels-per-second 2000 2>"$work/stream.err" & pids+=($!)
"$host" serve --bootstrap-servers "$bootstrap" --port "$port" --Inference:Serving:HttpPort="$http" --Inference:Training:GuardLabels=10000000 --Logging:LogLevel:Default=Warning \
  >"$work/serve.out" 2>&1 & pids+=($!)
for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
sleep 12
"$host" model export "$work/candidate.safetensors" --from "$address" >/dev/null

python3 - "$work" <<'PY'
import struct, sys
def s(field, b): return bytes([field << 3 | 2]) + varint(len(b)) + b
def varint(n):
    out = b""
    while True:
        byte = n & 0x7F; n >>= 7
        if n: out += bytes([byte | 0x80])
        else: return out + bytes([byte])
def frame(m): return b"\0" + struct.pack(">I", len(m)) + m
open(sys.argv[1] + "/score1.bin", "wb").write(frame(s(1, s(1, b"user-000042") + s(3, b"r-42"))))
PY

score=$address/inference.v1.ScoringService/Score
run() { # name rate
  h2load -c 4 -m 32 --rps $(( $2 / 4 )) -D "$seconds" --warm-up-time 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/score1.bin" --log-file "$work/$1.log" "$score" >"$work/$1.txt" 2>&1
}
shadow_rows() { curl -s "http://127.0.0.1:$http/metrics" | awk '/^inference_model_shadow_rows_total/{s+=$2} END{print s+0}'; }
SAVED=$seconds; seconds=5; run warm 1000; seconds=$SAVED
for rate in $rates; do
  for round in $(seq "$rounds"); do
    run "off-$rate-$round" "$rate"
    "$host" model load "$work/candidate.safetensors" --to "$address" >/dev/null
    before=$(shadow_rows)
    run "on-$rate-$round" "$rate"
    echo "$(( $(shadow_rows) - before ))" >"$work/on-$rate-$round.shadow"
    "$host" model withdraw --to "$address" >/dev/null
  done
done

python3 - "$work" "$rates" "$rounds" <<'PY'
import sys
work, rates, rounds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
def lat(name): return sorted(int(l.split()[2]) for l in open(f"{work}/{name}.log") if l.strip())
def p(l, q): return l[min(len(l) - 1, int(q * len(l)))] / 1000
print("| rate | round | Score p50 / p99 (ms), shadow off | Score p50 / p99 (ms), shadow on | rows the shadow scored | p99 on ÷ off (≤ 1.3) |")
print("|---|---:|---:|---:|---:|---:|")
for r in rates:
    for k in range(1, rounds + 1):
        off, on = lat(f"off-{r}-{k}"), lat(f"on-{r}-{k}")
        shadow = open(f"{work}/on-{r}-{k}.shadow").read().strip()
        print(f"| {r} req/s | {k} | {p(off, .5):.2f} / {p(off, .99):.2f} | {p(on, .5):.2f} / {p(on, .99):.2f} | {shadow} | {p(on, .99) / p(off, .99):.2f} |")
    # Every round's calls together: the p99 of all of them, off against on.
    off = sorted(sum((lat(f"off-{r}-{k}") for k in range(1, rounds + 1)), []))
    on = sorted(sum((lat(f"on-{r}-{k}") for k in range(1, rounds + 1)), []))
    print(f"| {r} req/s | all {rounds} | {p(off, .5):.2f} / {p(off, .99):.2f} | {p(on, .5):.2f} / {p(on, .99):.2f} | | **{p(on, .99) / p(off, .99):.2f}** |")
PY
grep -iE "error|fail|exception" "$work/serve.out" | grep -v "request stream was aborted" | head -5 || true

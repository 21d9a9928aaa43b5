#!/usr/bin/env bash
# Stream scoring from outside, in separate processes, all in one run (issue 17):
#   1. Throughput (ROUNDS rounds, default 3): a backlog of JSON events (`Inference.Bench stream`) on `inference dev-kafka`
#      (16 partitions); `inference serve` with stream scoring off reads it (applied events/s from the
#      Score watermark), then another `serve` (its own group) with every event scored (score records/s
#      on the scores topic, from its end offsets; they include one commit marker per partition and
#      transaction, ~0.1%).
#   2. Latency: that engine under a 20k events/s background stream; probe events produced one at a
#      time, their scores consumed from the scores topic (read_committed); the floor is a bare
#      produce → consume of an echo topic on the same broker.
#   3. Bytes per record at 16 and at 512 partitions of the events topic (and at 512 with the whole
#      watermark in each record, IncludeWatermark, as every record carried it before).
#   bash bench/outputs/run.sh            (RATE: background events/s, default 20000; EVENTS: backlog, default 300000)
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${RATE:-20000}
events=${EVENTS:-300000}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

dotnet build -c Release engine/Inference.Host >/dev/null
dotnet build -c Release bench/Inference.Bench >/dev/null
host=engine/Inference.Host/bin/Release/net10.0/inference
bench="dotnet bench/Inference.Bench/bin/Release/net10.0/Inference.Bench.dll"
topics=events,labels,events.dead-letter,scores,scores.progress,alerts,alerts.dead-letter,echo

broker() { # partitions, name → bootstrap address
  "$host" dev-kafka --partitions "$1" --topics "$topics" >"$work/$2.out" 2>"$work/$2.err" & pids+=($!)
  for _ in $(seq 200); do [ -s "$work/$2.out" ] && break; sleep 0.1; done
  head -1 "$work/$2.out"
}
serve() { # bootstrap, port, group, extra switches…
  local bootstrap=$1 port=$2 group=$3; shift 3
  "$host" serve --bootstrap-servers "$bootstrap" --port "$port" --group-id "$group" --Inference:Serving:HttpPort=-1 \
    --Inference:Training:Enabled=false --Logging:LogLevel:Default=Warning "$@" >"$work/serve-$port.out" 2>&1 & pids+=($!)
  last=$!
}

bootstrap=$(broker 16 broker16)
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog "$events" --events-per-second 0 --labels-per-second 0 2>"$work/backlog.err"

# Rounds of (scoring off, every event scored), each engine in its own consumer group over the same
# backlog, alternating so that the machine's noise falls on both alike.
rounds=${ROUNDS:-3}
throughput=""
for round in $(seq "$rounds"); do
  serve "$bootstrap" $((50090 + 2 * round)) "off-$round"
  off=$($bench watch --address "http://127.0.0.1:$((50090 + 2 * round))" --events "$events")
  kill "$last"; wait "$last" 2>/dev/null || true
  serve "$bootstrap" $((50091 + 2 * round)) "on-$round" --Inference:Outputs:Scores:Enabled=true
  scored=$($bench scores-watch --bootstrap-servers "$bootstrap" --events "$events")
  rate_off=$(echo "$off" | grep -Eo '[0-9,]+ events/s' | tr -d ', events/')
  rate_on=$(echo "$scored" | grep -Eo '[0-9,]+ events/s' | tr -d ', events/')
  ratio=$(awk -v a="$rate_on" -v b="$rate_off" 'BEGIN { printf "%.2f", a / b }')
  throughput+="| round $round: scoring off | $off |"$'\n'"| round $round: every event scored, score records on the topic | $scored (**${ratio}×** the off run) |"$'\n'
  if [ "$round" -lt "$rounds" ]; then kill "$last"; wait "$last" 2>/dev/null || true; fi
done

idle=$($bench scores-latency --bootstrap-servers "$bootstrap" --probes 300 --rate 20)
$bench stream --bootstrap-servers "$bootstrap" --entities 100000 --backlog 0 --events-per-second "$rate" --labels-per-second 0 2>"$work/stream.err" & stream=$!
pids+=($stream)
sleep 3
loaded=$($bench scores-latency --bootstrap-servers "$bootstrap" --probes 500 --rate 20)
kill "$stream"; wait "$stream" 2>/dev/null || true

bootstrap512=$(broker 512 broker512)
serve "$bootstrap512" 50093 wide --Inference:Outputs:Scores:Enabled=true
sleep 5
wide=$($bench scores-latency --bootstrap-servers "$bootstrap512" --probes 60 --rate 20 | tail -1)
kill "$last"; wait "$last" 2>/dev/null || true
serve "$bootstrap512" 50094 wide-watermark --Inference:Outputs:Scores:Enabled=true --Inference:Outputs:Scores:IncludeWatermark=true
sleep 5
wide_watermark=$($bench scores-latency --bootstrap-servers "$bootstrap512" --probes 60 --rate 20 | tail -1)

echo
echo "Machine: $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME"), $(dotnet --version) SDK; serve with its defaults (MaxBatchDelayMs 20), training off, every event scored."
echo
echo "| measure | result |"
echo "|---|---|"
printf "%s" "$throughput"
echo "| event → score, quiet stream | ${idle//$'\n'/; } |"
echo "| event → score, $rate events/s background stream (every one scored) | ${loaded//$'\n'/; } |"
echo "| 512 partitions | $wide |"
echo "| 512 partitions, IncludeWatermark | $wide_watermark |"

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace Inference.Bench.Load;

/// <summary>
/// Stream scoring from outside, as a downstream consumer sees it: probe events produced one at a time
/// (acks=all) to a running <c>inference serve</c> with stream scoring on; a read_committed consumer of
/// the scores topic records producer ack → the probe's score consumed. The floor, in the same run:
/// ack → consumed for a plain message on an echo topic of the same broker (Kafka's own delivery).
/// </summary>
internal static class ScoresProbe
{
    public static async Task<int> RunAsync(string bootstrap, int probes, int rate)
    {
        var seen = new ConcurrentDictionary<string, long>();
        using var stop = new CancellationTokenSource();
        var sizes = new ConcurrentBag<(int Key, int Value, int Headers)>();
        // Score records are keyed by entity: the probe's is found without parsing the value.
        var scores = Task.Run(() => Consume(bootstrap, "scores", IsolationLevel.ReadCommitted, seen, stop.Token, sizes));
        var echoes = Task.Run(() => Consume(bootstrap, "echo", IsolationLevel.ReadUncommitted, seen, stop.Token, null));
        await Task.Delay(3_000);
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrap, LingerMs = 0, Acks = Acks.All, EnableIdempotence = true, Partitioner = Confluent.Kafka.Partitioner.Murmur2Random }).Build();
        var scored = new List<double>();
        var floor = new List<double>();
        long time = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        int missing = 0;
        for (int i = 0; i < probes; i++)
        {
            string entity = $"probe-{i}";
            await producer.ProduceAsync("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes($"{{\"entity\":\"{entity}\",\"ts\":{time + i},\"amount\":1}}") });
            long acked = Stopwatch.GetTimestamp();
            double? latency = await WaitFor(seen, entity, acked);
            if (latency is null && i >= probes / 10)
            {
                missing++;
            }
            else if (latency is not null && i >= probes / 10)
            {
                scored.Add(latency.Value);
            }
            string echo = $"echo-{i}";
            await producer.ProduceAsync("echo", new Message<string, byte[]> { Key = echo, Value = [1] });
            long echoed = Stopwatch.GetTimestamp();
            if (await WaitFor(seen, echo, echoed) is { } bare)
            {
                floor.Add(bare);
            }
            await Task.Delay(1000 / rate);
        }
        await stop.CancelAsync();
        await Task.WhenAll(scores, echoes);
        static double At(List<double> values, double q)
        {
            var sorted = values.Order().ToArray();
            return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ack → score consumed (read_committed) over {scored.Count} probes (the first tenth is warm-up; {missing} never seen after it): p50 {At(scored, 0.5):F2} ms, p99 {At(scored, 0.99):F2} ms, max {scored.Max():F2} ms; bare produce → consume floor p50 {At(floor, 0.5):F2} ms, p99 {At(floor, 0.99):F2} ms"));
        if (!sizes.IsEmpty)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"record bytes (mean over {sizes.Count} probe records, before compression): value {sizes.Average(s => s.Value):F0}, key {sizes.Average(s => s.Key):F0}, headers {sizes.Average(s => s.Headers):F0}, total {sizes.Average(s => s.Key + s.Value + s.Headers):F0}"));
        }
        return missing == 0 ? 0 : 1;
    }

    private static async Task<double?> WaitFor(ConcurrentDictionary<string, long> seen, string key, long since)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (seen.TryRemove(key, out long at))
            {
                return Math.Max(0, (at - since) * 1e3 / Stopwatch.Frequency);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(0.2));
        }
        return null;
    }

    private static void Consume(string bootstrap, string topic, IsolationLevel isolation, ConcurrentDictionary<string, long> seen, CancellationToken stop,
        ConcurrentBag<(int, int, int)>? sizes)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = $"probe-{topic}-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Latest,
            IsolationLevel = isolation,
            EnableAutoCommit = false,
            FetchWaitMaxMs = 5,
        };
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        consumer.Subscribe(topic);
        while (!stop.IsCancellationRequested)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(50));
            if (result?.Message is { } message)
            {
                string k = message.Key;
                if (k.StartsWith("probe-", StringComparison.Ordinal) || k.StartsWith("echo-", StringComparison.Ordinal))
                {
                    seen[k] = Stopwatch.GetTimestamp();
                    sizes?.Add((Encoding.UTF8.GetByteCount(k), message.Value.Length, message.Headers?.Sum(h => Encoding.UTF8.GetByteCount(h.Key) + h.GetValueBytes().Length) ?? 0));
                }
            }
        }
        consumer.Close();
    }
}

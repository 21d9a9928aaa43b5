using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace Inference.Engine.Testing;

/// <summary>
/// A stream as users have them, not a friendly one: one entity holds 12% of the events and the rest
/// follow a Zipf-like law over 3,000 entities (so many events of one entity share a micro-batch),
/// three events share each event time, and one in six is up to 5 s older than the ones before it.
/// By default three events share each millisecond; a slower clock makes the stream span more event time
/// than the windows.
/// </summary>
internal sealed class SkewedStream
{
    private SkewedStream(List<(string Entity, string Json)> events, double hotShare)
    {
        Events = events;
        HotShare = hotShare;
    }

    public IReadOnlyList<(string Entity, string Json)> Events { get; }

    /// <summary>The hottest entity's share of the events.</summary>
    public double HotShare { get; }

    /// <param name="count">Events.</param>
    /// <param name="seed">The random seed.</param>
    /// <param name="entities">Entities besides the hot one.</param>
    /// <param name="tickMs">Event time between one group of three equal times and the next.</param>
    /// <param name="maxLagMs">How far behind the ones before it an out-of-order event may be.</param>
    public static SkewedStream Create(int count, int seed, int entities = 3_000, int tickMs = 1, int maxLagMs = 5_000)
    {
        var random = new Random(seed);
        // Zipf-like weights over the other entities (s = 1.1), sampled by inverting the cumulative sum.
        var cumulative = new double[entities];
        double total = 0;
        for (int k = 0; k < entities; k++)
        {
            total += 1 / Math.Pow(k + 1, 1.1);
            cumulative[k] = total;
        }
        var events = new List<(string, string)>(count);
        long start = 1_767_225_600_000;
        int hot = 0;
        for (int i = 0; i < count; i++)
        {
            string entity;
            if (random.NextDouble() < 0.12)
            {
                entity = "user-hot";
                hot++;
            }
            else
            {
                int k = Array.BinarySearch(cumulative, random.NextDouble() * total);
                entity = $"user-{(k < 0 ? ~k : k)}";
            }
            long ts = start + (long)(i / 3) * tickMs;
            if (random.Next(6) == 0)
            {
                ts -= random.Next(maxLagMs + 1);
            }
            events.Add((entity, string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{ts},\"amount\":{1 + random.Next(500)}}}")));
        }
        return new SkewedStream(events, (double)hot / count);
    }

    /// <summary>Produces the stream keyed by entity (Kafka's default partitioner), at about <paramref name="eventsPerSecond"/> (0: as fast as it goes).</summary>
    public static Task ProduceAsync(string bootstrapServers, SkewedStream stream, int eventsPerSecond) => Task.Run(async () =>
    {
        var config = new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 2, EnableIdempotence = true, Partitioner = Partitioner.Murmur2Random };
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        var started = DateTime.UtcNow;
        for (int i = 0; i < stream.Events.Count; i++)
        {
            var (entity, json) = stream.Events[i];
            while (true)
            {
                try
                {
                    producer.Produce("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) });
                    break;
                }
                catch (ProduceException<string, byte[]> error) when (error.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(10));
                }
            }
            if (eventsPerSecond > 0 && i % 100 == 99)
            {
                var due = started + TimeSpan.FromSeconds((i + 1) / (double)eventsPerSecond);
                if (due > DateTime.UtcNow)
                {
                    await Task.Delay(due - DateTime.UtcNow);
                }
            }
        }
        producer.Flush(TimeSpan.FromSeconds(60));
    });
}

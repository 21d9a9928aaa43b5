using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Inference.Proto.V1;

namespace Inference.Bench.Load;

/// <summary>
/// Clients of a running <c>inference serve</c>, as separate processes: how fast a backlog becomes
/// visible (read from the watermark Score returns), and how long an event takes from the producer's
/// ack to being visible to Score, with the gRPC health check on the same server as the floor.
/// </summary>
internal static class IngestProbe
{
    /// <summary>Polls Score until the watermark covers <c>--events</c>; prints events/s from the first progress seen to the end.</summary>
    public static async Task<int> WatchAsync(string address, long events)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var scoring = new ScoringService.ScoringServiceClient(channel);
        var request = new ScoreRequest { Rows = { new ScoreRow { Entity = "watch" } } };
        long first = -1, firstAt = 0, applied = 0;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (applied < events && DateTime.UtcNow < deadline)
        {
            try
            {
                var response = await scoring.ScoreAsync(request);
                applied = response.Watermark.Partitions.Sum(p => p.LastAppliedOffset + 1);
                if (first < 0 && applied > 0)
                {
                    (first, firstAt) = (applied, Stopwatch.GetTimestamp());
                }
            }
            catch (RpcException error) when (error.StatusCode == StatusCode.Unavailable)
            {
                await Task.Delay(50);
            }
            await Task.Delay(1);
        }
        double seconds = Stopwatch.GetElapsedTime(firstAt).TotalSeconds;
        double rate = (applied - first) / seconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"applied {applied:N0} of {events:N0}; {applied - first:N0} after the first progress seen, in {seconds:F2} s: {rate:N0} events/s"));
        return applied >= events ? 0 : 1;
    }

    /// <summary>
    /// Stream-scoring throughput from outside: the records on the scores topic (the sum of its partitions'
    /// end offsets), from the first one seen until <paramref name="events"/>.
    /// </summary>
    public static async Task<int> WatchScoresAsync(string bootstrap, string topic, long events)
    {
        using var consumer = new Confluent.Kafka.ConsumerBuilder<Confluent.Kafka.Ignore, Confluent.Kafka.Ignore>(
            new Confluent.Kafka.ConsumerConfig { BootstrapServers = bootstrap, GroupId = "scores-watch" }).Build();
        using var admin = new Confluent.Kafka.AdminClientBuilder(new Confluent.Kafka.AdminClientConfig { BootstrapServers = bootstrap }).Build();
        int partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics[0].Partitions.Count;
        long Written()
        {
            long sum = 0;
            for (int p = 0; p < partitions; p++)
            {
                sum += consumer.QueryWatermarkOffsets(new Confluent.Kafka.TopicPartition(topic, p), TimeSpan.FromSeconds(10)).High.Value;
            }
            return sum;
        }
        long start = Written();
        long first = -1, firstAt = 0, written = 0;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (written < events && DateTime.UtcNow < deadline)
        {
            written = Written() - start;
            if (first < 0 && written > 0)
            {
                (first, firstAt) = (written, Stopwatch.GetTimestamp());
            }
            await Task.Delay(10);
        }
        double seconds = Stopwatch.GetElapsedTime(firstAt).TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"scored {written:N0} of {events:N0}; {written - first:N0} after the first score seen, in {seconds:F2} s: {(written - first) / seconds:N0} events/s"));
        return written >= events ? 0 : 1;
    }

    /// <summary>
    /// Produces one probe event at a time (acks=all); at the producer's ack, asks Score for the probe's
    /// entity with min_watermark set to the probe's offset, and records ack → answer. A health check
    /// on the same server right after is the floor.
    /// </summary>
    public static async Task<int> FreshnessAsync(string address, string bootstrap, int probes, int rate)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var scoring = new ScoringService.ScoringServiceClient(channel);
        var health = new Health.HealthClient(channel);
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrap, LingerMs = 0, Acks = Acks.All, EnableIdempotence = true, Partitioner = Confluent.Kafka.Partitioner.Murmur2Random }).Build();
        var visible = new List<double>();
        var floor = new List<double>();
        long time = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        for (int i = 0; i < probes; i++)
        {
            string entity = $"probe-{i}";
            var payload = Encoding.UTF8.GetBytes($"{{\"entity\":\"{entity}\",\"ts\":{time + i},\"amount\":1}}");
            var written = await producer.ProduceAsync("events", new Message<string, byte[]> { Key = entity, Value = payload });
            long acked = Stopwatch.GetTimestamp();
            var minimum = new Proto.V1.FeatureWatermark { Partitions = { new PartitionWatermark { Topic = "events", Partition = written.Partition.Value, LastAppliedOffset = written.Offset.Value } } };
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = entity } }, MinWatermark = minimum }, deadline: DateTime.UtcNow.AddSeconds(10));
            if (i >= probes / 10)
            {
                visible.Add(Stopwatch.GetElapsedTime(acked).TotalMilliseconds);
            }
            long before = Stopwatch.GetTimestamp();
            await health.CheckAsync(new HealthCheckRequest());
            floor.Add(Stopwatch.GetElapsedTime(before).TotalMilliseconds);
            await Task.Delay(1000 / rate);
        }
        static double At(List<double> values, double q)
        {
            var sorted = values.Order().ToArray();
            return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ack → visible to Score over {visible.Count} probes (the first tenth is warm-up): p50 {At(visible, 0.5):F2} ms, p99 {At(visible, 0.99):F2} ms, max {visible.Max():F2} ms; health-check floor p50 {At(floor, 0.5):F2} ms, p99 {At(floor, 0.99):F2} ms"));
        return 0;
    }
}

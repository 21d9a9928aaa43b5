using System.Diagnostics;
using Confluent.Kafka;
using Inference.Demo;
using Inference.Engine.Kafka;

namespace Inference.Bench.Load;

/// <summary>
/// The live stream of the external load benchmark, as its own process: first a backlog of events,
/// then events and labels at fixed rates (paced every millisecond, not bursty) until stopped.
/// </summary>
internal static class StreamProducer
{
    public static async Task<int> RunAsync(string bootstrap, int entities, int backlog, int eventRate, int labelRate)
    {
        var stream = new SyntheticStream(entities, seed: 11);
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrap, LingerMs = 5, EnableIdempotence = true, Partitioner = Confluent.Kafka.Partitioner.Murmur2Random }).Build();
        for (int i = 0; i < backlog; i++)
        {
            var e = stream.NextEvent();
            producer.ProduceWaiting("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
        }
        producer.Flush(TimeSpan.FromMinutes(1));
        Console.Error.WriteLine($"stream: {backlog:N0} backlog events produced; now {eventRate:N0} events/s and {labelRate:N0} labels/s.");
        if (eventRate == 0 && labelRate == 0)
        {
            return 0;
        }

        var stopping = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stopping.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stopping.Cancel();
        var clock = Stopwatch.StartNew();
        long events = 0, labels = 0;
        while (!stopping.IsCancellationRequested)
        {
            double seconds = clock.Elapsed.TotalSeconds;
            for (; events < eventRate * seconds; events++)
            {
                var e = stream.NextEvent();
                producer.ProduceWaiting("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
            }
            for (; labels < labelRate * seconds; labels++)
            {
                var label = stream.NextLabel(stream.NextEntity());
                producer.ProduceWaiting("labels", new Message<string, byte[]> { Key = stream.Key(label.Entity), Value = label.Json });
            }
            producer.Poll(TimeSpan.Zero);
            await Task.Delay(1);
        }
        producer.Flush(TimeSpan.FromSeconds(5));
        return 0;
    }
}

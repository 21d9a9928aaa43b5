using Inference.Engine.Kafka;

namespace Inference.Host;

/// <summary>`inference dev-kafka`: an embedded Kafka-protocol broker that any client on this machine can use.</summary>
internal static class DevKafka
{
    public static async Task<int> RunAsync(int partitions, string topicList)
    {
        var topics = topicList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using var kafka = new EmbeddedKafka();
        foreach (var topic in topics)
        {
            kafka.CreateTopic(topic, partitions);
        }
        Console.WriteLine(kafka.BootstrapServers);
        Console.Error.WriteLine($"Embedded Kafka-protocol broker at {kafka.BootstrapServers}; topics {string.Join(", ", topics)} with {partitions} partitions each.");
        Console.Error.WriteLine("For development and tests: each partition keeps at most ~5 MiB and drops older data. Ctrl+C stops it.");
        var stopped = new TaskCompletionSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stopped.TrySetResult();
        };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stopped.TrySetResult();
        await stopped.Task;
        return 0;
    }
}

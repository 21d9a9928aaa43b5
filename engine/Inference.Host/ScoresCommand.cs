using Confluent.Kafka;
using Inference.Engine.Outputs;

namespace Inference.Host;

/// <summary><c>inference scores verify</c>: whether a scores topic holds every committed event exactly once.</summary>
internal static class ScoresCommand
{
    public static int Verify(string bootstrapServers, string topic, string progressTopic, string? eventsTopic, bool complete, bool json, TimeSpan timeout)
    {
        ScoresReport report;
        try
        {
            report = ScoresVerifier.Verify(TimeProvider.System, new ConsumerConfig { BootstrapServers = bootstrapServers }, topic, progressTopic, eventsTopic, complete, timeout);
        }
        catch (Exception error) when (error is KafkaException or TimeoutException or InvalidOperationException)
        {
            Console.Error.WriteLine($"inference: the topics could not be read: {error.Message}");
            return 2;
        }
        if (json)
        {
            Console.WriteLine(report.ToJson());
        }
        else
        {
            foreach (string line in ScoresVerifier.Describe(report))
            {
                Console.WriteLine(line);
            }
        }
        return report.Exact ? 0 : 1;
    }
}

using System.Text;
using Confluent.Kafka;

namespace Inference.Engine.Testing;

/// <summary>What an engine has taken from its topics: events applied, events set aside, labels learned.</summary>
/// <param name="Events">Events applied to the feature state.</param>
/// <param name="Malformed">Events set aside as malformed, or null when the wait does not look at them.</param>
/// <param name="Labels">Labels learned, or null when the wait does not look at labels.</param>
internal readonly record struct Taken(long Events, long? Malformed = null, long? Labels = null)
{
    public static Taken Of(EngineHarness engine) => new(engine.Metrics.EventsApplied, engine.Metrics.MalformedEvents, engine.Metrics.LabelsTrained);

    /// <summary>Whether <paramref name="now"/> is exactly what is expected, in what the expectation names.</summary>
    public bool IsMetBy(Taken now) => now.Events == Events && (Malformed is null || now.Malformed == Malformed) && (Labels is null || now.Labels == Labels);

    public override string ToString() =>
        $"{Events} events applied" + (Malformed is { } malformed ? $", {malformed} set aside" : "") + (Labels is { } labels ? $", {labels} labels learned" : "");
}

/// <summary>
/// The one way the tests feed an engine: produce messages to a topic through a real Kafka producer,
/// make sure the broker has every one of them, then wait until the engine has taken exactly what it
/// should. The wait fails with what was expected and what the engine had reached.
/// </summary>
internal static class Streams
{
    /// <summary>How long a producer may take to hand its messages to the broker.</summary>
    public static readonly TimeSpan FlushTimeout = TimeSpan.FromSeconds(60);

    /// <summary>How long an engine may take to take a test's stream, unless the test says otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>A keyed message with a UTF-8 JSON value.</summary>
    public static Message<string, byte[]> Json(string key, string json) => new() { Key = key, Value = Encoding.UTF8.GetBytes(json) };

    /// <summary>Produces <paramref name="messages"/> to <paramref name="topic"/> in order and flushes; fails if the broker did not take them all.</summary>
    public static void Produce(this IProducer<string, byte[]> producer, string topic, IEnumerable<Message<string, byte[]>> messages)
    {
        foreach (var message in messages)
        {
            producer.Produce(topic, message);
        }
        producer.FlushAll();
    }

    /// <summary>Flushes, failing if the broker has not acknowledged every message in time.</summary>
    public static void FlushAll(this IProducer<string, byte[]> producer)
    {
        int left = producer.Flush(FlushTimeout);
        Assert.True(left == 0, $"{left} messages still undelivered {FlushTimeout.TotalSeconds:0} s after the producer's flush");
    }

    /// <summary>Produces to the engine's broker, then waits until the engine has taken <paramref name="expected"/>.</summary>
    public static async Task ProduceAndWaitAsync(this EngineHarness engine, string topic, IEnumerable<Message<string, byte[]>> messages, Taken expected, TimeSpan? timeout = null)
    {
        using (var producer = EngineHarness.Producer(engine.BootstrapServers))
        {
            producer.Produce(topic, messages);
        }
        await engine.WaitTakenAsync(expected, timeout);
    }

    /// <summary>Waits until the engine has taken exactly <paramref name="expected"/>.</summary>
    public static Task WaitTakenAsync(this EngineHarness engine, Taken expected, TimeSpan? timeout = null) =>
        EngineHarness.WaitUntil(() => expected.IsMetBy(Taken.Of(engine)), timeout ?? DefaultTimeout, () => $"{expected} (so far {Taken.Of(engine)})");

    /// <summary>
    /// A barrier in the stream: one undecodable message to each of <paramref name="partitions"/> of
    /// <paramref name="topic"/>, then a wait until <paramref name="setAside"/> has counted every one. Kafka keeps
    /// order within a partition, so once they are counted the engine has read everything produced to those
    /// partitions before them: a check that something did not happen (a message taken twice) holds from then
    /// on, with no sleep to guess how long it might take to happen.
    /// </summary>
    public static async Task BarrierAsync(string bootstrapServers, string topic, IEnumerable<int> partitions, Func<long> setAside, TimeSpan? timeout = null)
    {
        long before = setAside();
        int count = 0;
        using (var producer = EngineHarness.Producer(bootstrapServers))
        {
            foreach (int partition in partitions)
            {
                producer.Produce(new TopicPartition(topic, partition), new Message<string, byte[]> { Key = "barrier", Value = "barrier: not an event"u8.ToArray() });
                count++;
            }
            producer.FlushAll();
        }
        await EngineHarness.WaitUntil(() => setAside() - before == count, timeout ?? DefaultTimeout,
            () => $"the {count} barrier messages on {topic} set aside (so far {setAside() - before})");
    }
}

using System.Globalization;
using Inference.Proto.V1;

namespace Inference.Client;

/// <summary>Events scored as they were applied (stream scoring): the id a label names to learn from what was scored.</summary>
public static class ScoredEvents
{
    /// <summary>
    /// The event id of a scored event: <c>topic/partition/offset/index</c> of its source. A label with this as its
    /// <c>request_id</c> learns from exactly the model inputs the event was scored with (while the engine's feature
    /// log holds them).
    /// </summary>
    public static string RequestId(string topic, int partition, long offset, int index) =>
        string.Create(CultureInfo.InvariantCulture, $"{topic}/{partition}/{offset}/{index}");

    /// <summary>The event id of <paramref name="scored"/> (see <see cref="RequestId(string, int, long, int)"/>).</summary>
    public static string RequestId(ScoredEvent scored)
    {
        ArgumentNullException.ThrowIfNull(scored);
        return RequestId(scored.Source.Topic, scored.Source.Partition, scored.Source.Offset, scored.Source.Index);
    }
}

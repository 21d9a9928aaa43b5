using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Kafka;

/// <summary>Checks <c>Inference:Kafka</c> at start; a parameter-server-only process needs no Kafka.</summary>
internal sealed class KafkaOptionsValidator(bool needsKafka) : IValidateOptions<KafkaOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaOptions kafka)
    {
        var rules = new ConfigurationRules(KafkaOptions.Section);
        if (needsKafka)
        {
            rules.Require(kafka.Embedded || !string.IsNullOrWhiteSpace(kafka.BootstrapServers), "BootstrapServers", kafka.BootstrapServers,
                "must name the Kafka cluster (or set Inference:Kafka:Embedded=true for the embedded broker)");
            rules.Require(!string.IsNullOrWhiteSpace(kafka.EventsTopic), "EventsTopic", kafka.EventsTopic, "must not be empty");
            rules.Require(Enum.IsDefined(kafka.EventsFormat) && kafka.EventsFormat != EventFormat.Unknown, "EventsFormat", kafka.EventsFormat,
                "must be Json, Protobuf, ProtobufBatch or Arrow");
            rules.Require(!string.IsNullOrWhiteSpace(kafka.LabelsTopic), "LabelsTopic", kafka.LabelsTopic, "must not be empty");
            rules.Require(!string.IsNullOrWhiteSpace(kafka.GroupId), "GroupId", kafka.GroupId, "must not be empty");
            rules.Require(kafka.EmbeddedPartitions is > 0 and <= 10_000, "EmbeddedPartitions", kafka.EmbeddedPartitions, "must be between 1 and 10000");
            rules.Require(kafka.MaxUnackedIngestBatches is > 0 and <= 10_000, "MaxUnackedIngestBatches", kafka.MaxUnackedIngestBatches, "must be between 1 and 10000");
            rules.Require(kafka.SessionTimeoutMs is >= 1_000 and <= 3_600_000, "SessionTimeoutMs", kafka.SessionTimeoutMs, "must be between 1000 and 3600000");
            rules.Require(kafka.MetadataTimeoutMs is > 0 and <= 600_000, "MetadataTimeoutMs", kafka.MetadataTimeoutMs, "must be between 1 and 600000");
            rules.Require(kafka.AssignmentQueryTimeoutMs is > 0 and <= 600_000, "AssignmentQueryTimeoutMs", kafka.AssignmentQueryTimeoutMs, "must be between 1 and 600000");
            rules.Require(kafka.FlushTimeoutMs is > 0 and <= 600_000, "FlushTimeoutMs", kafka.FlushTimeoutMs, "must be between 1 and 600000");
            rules.Require(kafka.DeadLetterShutdownTimeoutMs is > 0 and <= 600_000, "DeadLetterShutdownTimeoutMs", kafka.DeadLetterShutdownTimeoutMs, "must be between 1 and 600000");
        }
        return rules.Result;
    }
}

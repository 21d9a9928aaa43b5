using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Ingest;

/// <summary>Registers the ingest stage: its options, validator and metrics, and (where the pipeline runs) the Kafka connection.</summary>
internal static class IngestStage
{
    /// <summary>The options, checked in every role: every role but the parameter server consumes, so needs a broker.</summary>
    public static void AddOptions(IServiceCollection services, IConfiguration configuration, EngineRole role)
    {
        services.AddStageOptions(configuration, KafkaOptions.Section, new KafkaOptionsValidator(needsKafka: role != EngineRole.Ps));
        services.AddSingleton<IngestMetrics>();
    }

    public static void AddConnection(IServiceCollection services)
    {
        services.AddSingleton<KafkaConnection>();
        services.AddSingleton<MisroutedEvents>();
    }
}

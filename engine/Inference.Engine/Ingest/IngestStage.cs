using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Ingest;

/// <summary>Registers the ingest stage: its options, validator and metrics, and (when it runs) the Kafka connection and the events consumer.</summary>
internal static class IngestStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration, bool runs)
    {
        services.AddStageOptions(configuration, KafkaOptions.Section, new KafkaOptionsValidator(needsKafka: runs));
        services.AddSingleton<IngestMetrics>();
        if (runs)
        {
            services.AddSingleton<KafkaConnection>();
            services.AddSingleton<MisroutedEvents>();
        }
    }
}

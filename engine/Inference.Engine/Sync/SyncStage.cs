using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Sync;

/// <summary>Registers parameter sync: its options, validator and metrics, the parameter shard where this process holds it, and the client workers push and pull with.</summary>
internal static class SyncStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration, bool holdsShard, bool isWorker, bool trains)
    {
        services.AddStageOptions(configuration, SyncOptions.Section, new SyncOptionsValidator(isWorker));
        services.AddSingleton<SyncMetrics>();
        if (holdsShard)
        {
            services.AddSingleton<ParameterShard>();
            if (!trains)
            {
                // The parameter server alone (role Ps) checkpoints its shard; in role All the shard is
                // seeded again from the trainer, whose state the engine's own checkpoints hold.
                services.AddHostedService<ShardCheckpointer>();
            }
        }
        if (!trains)
        {
            return;
        }
        services.AddSingleton<IParameterClient>(sp =>
        {
            var sync = sp.GetRequiredService<IOptions<SyncOptions>>().Value;
            return holdsShard
                ? new LocalParameterClient(sp.GetRequiredService<ParameterShard>())
                : new GrpcParameterClient(sync.ParameterServer!, sync.WorkerId ?? $"{Environment.MachineName}-{Environment.ProcessId}", sp.GetRequiredService<EngineChannels>());
        });
    }
}

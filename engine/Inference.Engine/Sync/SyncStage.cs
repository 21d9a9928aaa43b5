using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Models.Registry;
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
        if (isWorker)
        {
            // The first hosted service: nothing (consumers, training, announcements) starts before the pool's parameter server answers.
            services.Insert(0, ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, ParameterServerCheck>());
        }
        if (holdsShard)
        {
            services.AddSingleton<ParameterShard>();
        }
        if (!trains)
        {
            return;
        }
        services.AddSingleton<IParameterClient>(sp =>
        {
            if (holdsShard)
            {
                return new LocalParameterClient(sp.GetRequiredService<ParameterShard>());
            }
            var sync = sp.GetRequiredService<IOptions<SyncOptions>>().Value;
            var channels = sp.GetRequiredService<EngineChannels>();
            var time = sp.GetRequiredService<TimeProvider>();
            string worker = sync.WorkerId ?? $"{Environment.MachineName}-{Environment.ProcessId}";
            var servers = sync.ParameterServers;
            if (servers.Count == 1)
            {
                return new GrpcParameterClient(servers[0], worker, channels, time, sync.RpcTimeoutMs);
            }
            var registry = sp.GetRequiredService<ModelRegistry>();
            return new ShardedParameterClient([.. servers.Select(address => new GrpcParameterClient(address, worker, channels, time, sync.RpcTimeoutMs))],
                new ParameterPlacement(servers.Count, sync.MaxTensorPartValues), registry.CurrentParameters);
        });
    }
}

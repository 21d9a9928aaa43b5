using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Models.Registry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Sync;

/// <summary>Registers parameter sync: its options, validator and metrics, the parameter shard where this process holds it, and the client trainers push and pull with.</summary>
internal static class SyncStage
{
    public static void AddOptions(IServiceCollection services, IConfiguration configuration, EngineRole role)
    {
        services.AddStageOptions(configuration, SyncOptions.Section, new SyncOptionsValidator(isWorker: role == EngineRole.Worker));
        services.AddSingleton<SyncMetrics>();
    }

    public static void AddShard(IServiceCollection services) => services.AddSingleton<ParameterShard>();

    /// <summary>The trainer of a single node pushes to and pulls from the shard this process holds.</summary>
    public static void AddLocalClient(IServiceCollection services) =>
        services.AddSingleton<IParameterClient>(sp => new LocalParameterClient(sp.GetRequiredService<ParameterShard>()));

    /// <summary>
    /// A pool worker's trainer syncs with the pool's parameter servers over gRPC (sharded across several), and
    /// the check that they answer before anything starts.
    /// </summary>
    public static void AddRemoteClient(IServiceCollection services)
    {
        services.AddSingleton<ParameterServerCheck>();
        services.AddSingleton<IParameterClient>(sp =>
        {
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

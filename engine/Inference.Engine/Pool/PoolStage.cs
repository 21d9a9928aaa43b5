using Inference.Engine.Ingest;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Pool;

/// <summary>
/// Registers the pool: the partitions this node owns (every role: a single node owns them all), and in a
/// pool worker its membership, Score routing and partition handoff; in a parameter server the registry
/// of members.
/// </summary>
internal static class PoolStage
{
    public static void AddOwnership(IServiceCollection services)
    {
        services.AddSingleton<PartitionOwnership>();
        services.AddSingleton<IOwnedPartitions>(sp => sp.GetRequiredService<PartitionOwnership>());
        services.AddSingleton<IAssignmentListener>(sp => sp.GetRequiredService<PartitionOwnership>());
    }

    /// <summary>A worker of a pool announces what it owns, routes Score rows to their owners and hands partitions over.</summary>
    public static void AddMembership(IServiceCollection services)
    {
        services.AddSingleton<PoolMembership>();
        services.AddSingleton<ScoreRouter>();
        services.AddSingleton<IScoreRouting>(sp => sp.GetRequiredService<ScoreRouter>());
        services.AddSingleton<IPartitionHandoff, PartitionHandoff>();
    }

    /// <summary>The process that holds the parameter shard keeps the pool's membership.</summary>
    public static void AddRegistry(IServiceCollection services)
    {
        services.AddSingleton<PoolRegistry>();
        services.AddSingleton<IPoolRegistry>(sp => sp.GetRequiredService<PoolRegistry>());
    }
}

using Inference.Models.Parameters;
using Inference.Models.Training;

namespace Inference.Engine.Sync;

/// <summary>
/// A sharded parameter server seen as one: each shard (its own <c>inference serve --role Ps</c>) holds the
/// tensors <see cref="ParameterPlacement"/> puts there; pushes and pulls go to all shards in parallel. Each
/// shard keeps its own version: a push carries, per shard, the version this worker last pulled from it;
/// the version reported to the trainer is their sum (it grows with every push anywhere and drops when a
/// shard restarts). A push retried after a lost answer carries the same sequence to every shard, so a
/// shard that had applied its part answers it as a duplicate and the others apply theirs. Embedding rows (a
/// model over ids) go to the shard of their key.
/// </summary>
internal sealed class ShardedParameterClient(IReadOnlyList<IParameterClient> shards, ParameterPlacement placement, Func<ParameterSet> layout) : IParameterClient, IDisposable
{
    private readonly long[] _pulled = new long[shards.Count];

    public (long Version, ParameterSet? Parameters, InputMoments? Moments) Pull()
    {
        var answers = new (long Version, ParameterSet? Parameters, InputMoments? Moments)[shards.Count];
        OnEach(s => answers[s] = shards[s].Pull());
        for (int s = 0; s < shards.Count; s++)
        {
            _pulled[s] = answers[s].Version;
        }
        long version = answers.Sum(a => a.Version);
        if (answers.Any(a => a.Parameters is null))
        {
            // A shard that restarted empty: the trainer seeds the server again (shards that hold theirs keep them).
            return (version, null, null);
        }
        return (version, placement.Join(layout(), answers.Select(a => a.Parameters!)), answers[placement.StandardisationShard].Moments);
    }

    public PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments, IReadOnlyList<RowBlock>? rows = null)
    {
        var parts = placement.Split(delta);
        var rowParts = SplitRows(rows);
        var results = new PushResult[shards.Count];
        var stale = new StalePushException?[shards.Count];
        OnEach(s =>
        {
            try
            {
                results[s] = shards[s].Push(parts[s], _pulled[s], sequence, s == placement.StandardisationShard ? moments : null, rowParts?[s]);
            }
            catch (StalePushException error)
            {
                stale[s] = error;
            }
        });
        if (stale.FirstOrDefault(e => e is not null) is { } first)
        {
            throw first;
        }
        return new PushResult(results.Sum(r => r.Version), results.All(r => r.Duplicate));
    }

    public long Initialize(ParameterSet parameters, IReadOnlyList<RowBlock>? rows = null)
    {
        var parts = placement.Split(parameters);
        var rowParts = SplitRows(rows);
        var versions = new long[shards.Count];
        OnEach(s => versions[s] = shards[s].Initialize(parts[s], rowParts?[s]));
        return versions.Sum();
    }

    public IReadOnlyList<RowBlock> PullRows()
    {
        var answers = new IReadOnlyList<RowBlock>[shards.Count];
        OnEach(s => answers[s] = shards[s].PullRows());
        return [.. answers.SelectMany(a => a)];
    }

    /// <summary>Rows go to the shard of their key (key mod shards): each row lives on one shard.</summary>
    private List<RowBlock>[]? SplitRows(IReadOnlyList<RowBlock>? rows)
    {
        if (rows is null)
        {
            return null;
        }
        var parts = new List<RowBlock>[shards.Count];
        for (int s = 0; s < shards.Count; s++)
        {
            parts[s] = [];
        }
        foreach (var block in rows)
        {
            var keys = new List<ulong>[shards.Count];
            var values = new List<float>[shards.Count];
            for (int k = 0; k < block.Keys.Length; k++)
            {
                int s = (int)(block.Keys[k] % (ulong)shards.Count);
                (keys[s] ??= []).Add(block.Keys[k]);
                (values[s] ??= []).AddRange(block.Values.AsSpan(k * block.Dimension, block.Dimension));
            }
            for (int s = 0; s < shards.Count; s++)
            {
                if (keys[s] is { } shardKeys)
                {
                    parts[s].Add(new RowBlock(block.Input, block.Dimension, [.. shardKeys], [.. values[s]]));
                }
            }
        }
        return parts;
    }

    /// <summary>Runs <paramref name="call"/> for every shard at once; the first failure is thrown as itself (not wrapped).</summary>
    private void OnEach(Action<int> call)
    {
        var calls = new Task[shards.Count];
        for (int s = 0; s < shards.Count; s++)
        {
            int shard = s;
            calls[s] = Task.Run(() => call(shard));
        }
        try
        {
            Task.WaitAll(calls);
        }
        catch (AggregateException error) when (error.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error.InnerExceptions[0]);
        }
    }

    public void Dispose()
    {
        foreach (var shard in shards.OfType<IDisposable>())
        {
            shard.Dispose();
        }
    }
}

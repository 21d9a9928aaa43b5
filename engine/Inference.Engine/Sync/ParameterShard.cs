using Inference.Models;
using Inference.Models.Parameters;
using Inference.Models.Training;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Sync;

/// <summary>What a push did: the shard's version after it, and whether it had been applied before.</summary>
internal readonly record struct PushResult(long Version, bool Duplicate);

/// <summary>
/// A shard's whole state, what its checkpoint holds: the version, the merged parameters (null before a
/// worker initialised it), per worker the last sequence applied and its latest input statistics.
/// </summary>
internal sealed record ShardState(long Version, ParameterSet? Parameters, IReadOnlyDictionary<string, ulong> Applied, IReadOnlyDictionary<string, InputMoments> Moments)
{
    /// <summary>A pool's models over ids: every embedding row the shard holds, as offsets from their initial values.</summary>
    public IReadOnlyList<RowBlock>? Rows { get; init; }
}

/// <summary>A push refused because its base is too old: the worker pulls first.</summary>
internal sealed class StalePushException(string message) : Exception(message);

/// <summary>Parameters refused as they are: <see cref="Reason"/> is the metric's tag (not_finite, norm, shape).</summary>
internal sealed class InvalidParametersException(string reason, string message) : ArgumentException(message)
{
    public string Reason { get; } = reason;
}

/// <summary>
/// One shard of the parameter server: the merged parameters and their version. A push adds the
/// worker's delta (its parameters minus those of the version it started from) into the shard, the
/// usual asynchronous data-parallel update; every push bumps the version. Pushes are applied at most
/// once per worker and sequence (a retry after a lost response is answered, not applied again), only
/// from workers at most <see cref="SyncOptions.MaxStaleness"/> versions behind, and only when every
/// value is finite and the delta's L2 norm is within <see cref="SyncOptions.MaxUpdateNorm"/>.
/// The input standardisation is not a weight: each worker sends its running statistics with its push,
/// the shard keeps every worker's latest and derives <c>input_mean</c> and <c>input_scale</c> from their
/// sum (count-weighted moments, as one node over all the rows); deltas of those two are ignored.
/// </summary>
internal sealed class ParameterShard(IOptions<SyncOptions> options, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ulong> _applied = new(StringComparer.Ordinal);
    private readonly Dictionary<string, InputMoments> _moments = new(StringComparer.Ordinal);
    private InputMoments? _merged;
    private readonly int _maxStaleness = options.Value.MaxStaleness;
    private readonly double _maxNorm = options.Value.MaxUpdateNorm;
    private readonly WeightMerge _merge = options.Value.Merge;
    private readonly long _activeTicks = options.Value.MemberTimeoutMs * time.TimestampFrequency / 1000;
    private readonly Dictionary<string, long> _lastPush = new(StringComparer.Ordinal);
    private readonly RowStore _rows = new();
    private ParameterSet? _parameters;
    private long _version;

    public (long Version, ParameterSet? Parameters) Current
    {
        get
        {
            lock (_gate)
            {
                return (_version, _parameters);
            }
        }
    }

    /// <summary>Every worker's latest input statistics merged; null before any worker sent some.</summary>
    public InputMoments? Moments
    {
        get
        {
            lock (_gate)
            {
                return _merged;
            }
        }
    }

    /// <summary>Everything the shard holds, consistent at one version (for its checkpoint).</summary>
    public ShardState State
    {
        get
        {
            lock (_gate)
            {
                return new ShardState(_version, _parameters, new Dictionary<string, ulong>(_applied, StringComparer.Ordinal), new Dictionary<string, InputMoments>(_moments, StringComparer.Ordinal))
                {
                    Rows = _rows.Rows == 0 ? null : _rows.Since(long.MinValue),
                };
            }
        }
    }

    /// <summary>Takes up a checkpointed state (on start, before the shard answers anyone).</summary>
    public void Restore(ShardState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Parameters is { } parameters && !parameters.IsFinite())
        {
            throw new InvalidDataException("The checkpointed parameters are not finite.");
        }
        lock (_gate)
        {
            _version = state.Version;
            _parameters = state.Parameters;
            _applied.Clear();
            foreach (var (worker, sequence) in state.Applied)
            {
                _applied[worker] = sequence;
            }
            _moments.Clear();
            foreach (var (worker, moments) in state.Moments)
            {
                _moments[worker] = moments;
            }
            MergeMoments();
            _rows.Restore(state.Rows, state.Version);
        }
    }

    /// <summary>The embedding rows changed after <paramref name="since"/> (offsets from their initial values), and the shard's version.</summary>
    public (long Version, IReadOnlyList<RowBlock> Rows) RowsSince(long since)
    {
        lock (_gate)
        {
            return (_version, _rows.Since(since));
        }
    }

    /// <summary>Adopts a worker's full parameters when the shard holds none, and its rows where the shard holds none for their keys.</summary>
    public long Initialize(ParameterSet parameters, IReadOnlyList<RowBlock>? rows = null)
    {
        lock (_gate)
        {
            if (rows is { Count: > 0 })
            {
                _rows.Check(rows);
                _rows.Seed(rows, Math.Max(1, _version));
            }
        }
        return Adopt(parameters);
    }

    /// <summary>Adopts a worker's full parameters when the shard holds none; otherwise changes nothing.</summary>
    private long Adopt(ParameterSet parameters)
    {
        if (!parameters.IsFinite())
        {
            throw new InvalidParametersException("not_finite", "The initial parameters are not finite.");
        }
        lock (_gate)
        {
            if (_parameters is null)
            {
                _parameters = parameters;
                _version = 1;
            }
            return _version;
        }
    }

    /// <summary>
    /// Adds a worker's delta. Throws <see cref="InvalidParametersException"/> when it does not fit the shard, is
    /// not finite or is too large, and <see cref="StalePushException"/> when its base is too old.
    /// </summary>
    public PushResult Apply(string worker, ulong sequence, long baseVersion, ParameterSet delta, InputMoments? moments = null, IReadOnlyList<RowBlock>? rows = null)
    {
        ArgumentNullException.ThrowIfNull(delta);
        if (moments is not null && (!double.IsFinite(moments.Rows) || moments.Rows < 0 || moments.Sums.Any(v => !double.IsFinite(v)) || moments.SumsOfSquares.Any(v => !double.IsFinite(v))))
        {
            throw new InvalidParametersException("not_finite", "The input statistics are not finite.");
        }
        // The standardisation is derived from the statistics, not pushed as a delta.
        delta = new ParameterSet([.. delta.Parameters.Where(p => !IsStandardisation(p.Name))]);
        double squares = 0;
        foreach (var tensor in delta.Parameters)
        {
            foreach (float value in tensor.Values)
            {
                if (!float.IsFinite(value))
                {
                    throw new InvalidParametersException("not_finite", $"The delta of '{tensor.Name}' is not finite.");
                }
                squares += (double)value * value;
            }
        }
        double norm = Math.Sqrt(squares);
        if (norm > _maxNorm)
        {
            throw new InvalidParametersException("norm", $"The delta's L2 norm {norm:G4} exceeds Inference:Sync:MaxUpdateNorm ({_maxNorm:G4}).");
        }
        lock (_gate)
        {
            if (_parameters is null)
            {
                throw new InvalidOperationException("The shard holds no parameters yet: initialize it first.");
            }
            if (sequence > 0 && _applied.TryGetValue(worker, out ulong last) && sequence <= last)
            {
                return new PushResult(_version, Duplicate: true);
            }
            if (_version - baseVersion > _maxStaleness)
            {
                throw new StalePushException($"The push is based on version {baseVersion}, {_version - baseVersion} behind the shard's {_version} "
                    + $"(Inference:Sync:MaxStaleness {_maxStaleness}): pull first.");
            }
            var weights = _parameters.Parameters.Where(p => !IsStandardisation(p.Name)).ToList();
            if (delta.Parameters.Count != weights.Count)
            {
                throw new InvalidParametersException("shape", $"The delta has {delta.Parameters.Count} weight tensors; the shard holds {weights.Count}.");
            }
            if (_merge == WeightMerge.Mean)
            {
                // Each push counts for one of the workers pushing lately: a round of N pushes moves the
                // weights by their mean, as one worker's step would.
                long now = time.GetTimestamp();
                _lastPush[worker] = now;
                int active = _lastPush.Values.Count(at => now - at <= _activeTicks);
                delta = delta.Scaled(1f / active);
            }
            if (rows is { Count: > 0 })
            {
                _rows.Check(rows);
            }
            var updated = new ParameterSet(weights).Plus(delta);
            if (moments is not null)
            {
                var width = _parameters.Find(ScoringModule.InputMeanName)?.Values.Length;
                if (width is not null && moments.Sums.Length != width)
                {
                    throw new InvalidParametersException("shape", $"The input statistics cover {moments.Sums.Length} inputs; the model has {width}.");
                }
                _moments[worker] = moments;
                MergeMoments();
            }
            _parameters = WithStandardisation(updated);
            if (rows is { Count: > 0 })
            {
                // Rows sum whatever the merge of the weights (see RowStore), at the version this push makes.
                _rows.Add(rows, _version + 1);
            }
            if (sequence > 0)
            {
                _applied[worker] = sequence;
            }
            return new PushResult(++_version, Duplicate: false);
        }
    }

    /// <summary>Every worker's latest statistics summed (under the gate): what the standardisation is derived from.</summary>
    private void MergeMoments() => _merged = _moments.Count == 0 ? null : _moments.Values.Aggregate((a, b) => a.Plus(b));

    private static bool IsStandardisation(string name) => name is ScoringModule.InputMeanName or ScoringModule.InputScaleName;

    /// <summary>The weights with the standardisation derived from the merged statistics (the current one while there are none).</summary>
    private ParameterSet WithStandardisation(ParameterSet weights)
    {
        var current = _parameters!.Parameters.Where(p => IsStandardisation(p.Name)).ToList();
        if (_merged is { Rows: > 0 } merged)
        {
            var (mean, scale) = merged.Standardisation();
            current = current.Select(p => p with { Values = p.Name == ScoringModule.InputMeanName ? mean : scale }).ToList();
        }
        // The module's order: the standardisation first, then the layers.
        return new ParameterSet([.. current, .. weights.Parameters]);
    }
}

using Inference.Models.Parameters;

namespace Inference.Engine.Sync;

/// <summary>
/// One shard of the parameter server: the merged parameters and their version. A push adds the
/// worker's delta (its parameters minus those of the version it started from) into the shard, the
/// usual asynchronous data-parallel update; every push bumps the version.
/// </summary>
public sealed class ParameterShard
{
    private readonly Lock _gate = new();
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

    /// <summary>Adopts a worker's full parameters when the shard holds none; otherwise changes nothing.</summary>
    public long Initialize(ParameterSet parameters)
    {
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

    /// <summary>Adds a delta; throws <see cref="ArgumentException"/> when names or shapes do not match the shard.</summary>
    public long Apply(ParameterSet delta)
    {
        lock (_gate)
        {
            if (_parameters is null)
            {
                throw new InvalidOperationException("The shard holds no parameters yet: initialize it first.");
            }
            if (delta.Parameters.Count != _parameters.Parameters.Count)
            {
                throw new ArgumentException($"The delta has {delta.Parameters.Count} tensors; the shard holds {_parameters.Parameters.Count}.");
            }
            _parameters = _parameters.Plus(delta);
            return ++_version;
        }
    }
}

using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>
/// Holds the published model. Publishing builds a new snapshot and swaps it in atomically; scoring
/// takes a lease on whatever is current and never waits for training or publishing.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    private readonly Lock _publishGate = new();
    private ModelSnapshot _current;

    /// <summary>Starts at version 1 with the spec's seeded initial weights.</summary>
    public ModelRegistry(ModelSpec spec)
    {
        Spec = spec;
        using var initial = new ScoringModule(spec);
        _current = new ModelSnapshot(spec, initial.Export(), version: 1);
    }

    public ModelSpec Spec { get; }

    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>Raised after each publish with the new version.</summary>
    public event Action<long>? Published;

    public ModelLease Acquire()
    {
        while (true)
        {
            var snapshot = Volatile.Read(ref _current);
            if (snapshot.TryAcquire())
            {
                return new ModelLease(snapshot);
            }
        }
    }

    /// <summary>The current parameters (a copy).</summary>
    public ParameterSet CurrentParameters() => Volatile.Read(ref _current).Parameters;

    /// <summary>Publishes new parameters as the next version and returns it.</summary>
    public long Publish(ParameterSet parameters)
    {
        long version;
        lock (_publishGate)
        {
            var next = new ModelSnapshot(Spec, parameters, Volatile.Read(ref _current).Version + 1);
            var previous = Interlocked.Exchange(ref _current, next);
            previous.Release();
            version = next.Version;
        }
        Published?.Invoke(version);
        return version;
    }

    public void Dispose() => Interlocked.Exchange(ref _current, null!)?.Release();
}
